-- How far each `corral import` got: moved forward in the transaction of
-- every batch it writes, so that an import stopped in any way resumes after
-- exactly the lines stored (`corral import --resume`).
CREATE TABLE imports (
    site_id INTEGER NOT NULL REFERENCES sites (id),
    import_key TEXT NOT NULL,
    kind TEXT NOT NULL,
    line INTEGER NOT NULL,
    imported INTEGER NOT NULL,
    skipped INTEGER NOT NULL,
    started_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    finished_at INTEGER,
    PRIMARY KEY (site_id, import_key)
);
