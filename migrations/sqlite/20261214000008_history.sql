-- Segment definition versions and the audit log, each written in the same
-- transaction as the write it records.

-- Every definition a segment was saved with (name, description and query),
-- numbered by the segment's version once it was saved (the number in its
-- ETag). Discarding and restoring move that version without saving a
-- definition, so a segment's numbers may skip.
CREATE TABLE segment_versions (
    site_id     INTEGER NOT NULL,
    segment_id  INTEGER NOT NULL,
    version     INTEGER NOT NULL,
    name        TEXT    NOT NULL,
    description TEXT,
    -- visitor_event_query exactly as it was saved (compact JSON text).
    query       TEXT    NOT NULL,
    saved_at    INTEGER NOT NULL,
    -- Who saved it: a publishable key, or 'cli'; NULL when not known (the
    -- baseline below).
    saved_by    TEXT,
    PRIMARY KEY (site_id, segment_id, version)
) WITHOUT ROWID;

-- Segments saved before this release: their definition now is their first
-- recorded version, saved when they were last changed, by no one known.
INSERT INTO segment_versions (site_id, segment_id, version, name, description, query, saved_at, saved_by)
SELECT site_id, id, version, name, description, query, updated_at, NULL FROM segments;

-- The management actions of each site: segments created, changed,
-- discarded and restored; webhooks created, changed and deleted; key pairs
-- added and revoked. Never a secret.
CREATE TABLE audit_log (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,
    site_id  INTEGER NOT NULL,
    at       INTEGER NOT NULL,
    -- A publishable key, or 'cli'.
    actor    TEXT    NOT NULL,
    -- segment.created, webhook.deleted, key.added, ...
    action   TEXT    NOT NULL,
    -- What was acted on: a segment's or webhook's id, a publishable key.
    subject  TEXT    NOT NULL,
    -- What changed, as a JSON object (text).
    details  TEXT    NOT NULL
);

CREATE INDEX audit_log_site ON audit_log (site_id, id);
