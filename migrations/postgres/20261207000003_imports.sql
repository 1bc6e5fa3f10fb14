-- How far each `corral import` got: moved forward in the transaction of
-- every batch it writes, so that an import stopped in any way resumes after
-- exactly the lines stored (`corral import --resume`).
CREATE TABLE imports (
    site_id BIGINT NOT NULL REFERENCES sites (id),
    import_key TEXT NOT NULL,
    kind TEXT NOT NULL,
    line BIGINT NOT NULL,
    imported BIGINT NOT NULL,
    skipped BIGINT NOT NULL,
    started_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    finished_at BIGINT,
    PRIMARY KEY (site_id, import_key)
);
