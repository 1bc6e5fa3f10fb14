-- Hand-made includes and excludes (see migrations/sqlite/20270104000013_segment_manual.sql).
CREATE TABLE segment_manual (
    site_id        BIGINT  NOT NULL,
    segment_id     BIGINT  NOT NULL,
    excluded       BOOLEAN NOT NULL,
    subscriber_id  BIGINT  NOT NULL,
    added_at       BIGINT  NOT NULL,
    PRIMARY KEY (site_id, segment_id, excluded, subscriber_id),
    FOREIGN KEY (site_id, segment_id) REFERENCES segments (site_id, id),
    FOREIGN KEY (site_id, subscriber_id) REFERENCES subscribers (site_id, id)
);
CREATE INDEX segment_manual_subscriber ON segment_manual (site_id, subscriber_id);
