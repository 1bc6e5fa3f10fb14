-- Sites, their API keys, and their segments. Timestamps are Unix milliseconds.

CREATE TABLE sites (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    uuid        TEXT    NOT NULL UNIQUE,
    name        TEXT    NOT NULL,
    demo        INTEGER NOT NULL DEFAULT 0,
    created_at  INTEGER NOT NULL
);

CREATE TABLE api_keys (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    site_id          INTEGER NOT NULL REFERENCES sites (id),
    publishable_key  TEXT    NOT NULL UNIQUE,
    -- SHA-256 of the secret key; the secret itself is never stored.
    secret_hash      BLOB    NOT NULL,
    created_at       INTEGER NOT NULL,
    revoked_at       INTEGER
);

CREATE INDEX api_keys_site ON api_keys (site_id);

CREATE TABLE segments (
    -- AUTOINCREMENT: an id is never handed out twice, even after the newest
    -- segment is gone, so an old id can never name a new segment.
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    site_id       INTEGER NOT NULL REFERENCES sites (id),
    name          TEXT    NOT NULL,
    -- Unicode lowercase of name, computed by the application so that every
    -- backend compares and orders names identically.
    name_key      TEXT    NOT NULL,
    description   TEXT,
    -- visitor_event_query as the client wrote it (compact JSON text).
    query         TEXT    NOT NULL,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL,
    discarded_at  INTEGER,
    version       INTEGER NOT NULL DEFAULT 1
);

-- Names are unique among a site's kept segments, ignoring case.
CREATE UNIQUE INDEX segments_kept_name ON segments (site_id, name_key) WHERE discarded_at IS NULL;
-- The Bento list: a site's kept segments in name order.
CREATE INDEX segments_listing ON segments (site_id, discarded_at, name_key, name, id);
