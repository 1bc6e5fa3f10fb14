-- Membership checkpoints (see migrations/sqlite/20261228000012_journal_checkpoints.sql).
CREATE TABLE journal_checkpoints (
    site_id     BIGINT NOT NULL,
    segment_id  BIGINT NOT NULL,
    through_id  BIGINT NOT NULL,
    at          BIGINT NOT NULL,
    members     BIGINT NOT NULL,
    ids         BYTEA  NOT NULL,
    PRIMARY KEY (site_id, segment_id, through_id)
);
