-- Hand-made includes and excludes of segments: a segment's members are
-- (the query's members ∪ includes) ∖ excludes. One row a subscriber in a
-- segment's includes (`excluded` 0) or excludes (1); kept while the segment
-- is discarded, so that a restore brings them back. The audience reads them
-- as hidden tags (see crates/corral-core/src/query/manual.rs).
CREATE TABLE segment_manual (
    site_id        INTEGER NOT NULL,
    segment_id     INTEGER NOT NULL,
    excluded       INTEGER NOT NULL,
    subscriber_id  INTEGER NOT NULL,
    added_at       INTEGER NOT NULL,
    PRIMARY KEY (site_id, segment_id, excluded, subscriber_id)
) WITHOUT ROWID;
-- A subscriber's rows, for the reads that bring one subscriber up to date.
CREATE INDEX segment_manual_subscriber ON segment_manual (subscriber_id);
