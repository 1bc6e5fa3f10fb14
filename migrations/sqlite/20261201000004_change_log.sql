-- The change log: what every write transaction changed, per site, in commit
-- order. A snapshot of a site's audience held in memory reflects one position
-- (`seq`) and reaches the current state by applying the entries after it.

-- One row per site: the position of its newest entry, and of the newest
-- entries that changed its segments and its keys (caches of rendered segments
-- and of credentials follow those two). Every write of a site updates this row
-- in its transaction, so positions are handed out in commit order (on a
-- database with concurrent writers, the row lock serialises writers of one
-- site until they commit).
CREATE TABLE change_heads (
    site_id       INTEGER PRIMARY KEY REFERENCES sites (id),
    seq           INTEGER NOT NULL DEFAULT 0,
    segments_seq  INTEGER NOT NULL DEFAULT 0,
    keys_seq      INTEGER NOT NULL DEFAULT 0
);

INSERT INTO change_heads (site_id) SELECT id FROM sites;

-- One entry per write transaction and site: a JSON object naming what changed
-- (subscribers whose row or tags changed, the range of event ids appended,
-- segments saved, keys changed). `at` is the writer's clock, used only to
-- trim entries older than the retention period.
CREATE TABLE change_log (
    site_id  INTEGER NOT NULL,
    seq      INTEGER NOT NULL,
    at       INTEGER NOT NULL,
    entry    TEXT    NOT NULL,
    PRIMARY KEY (site_id, seq)
) WITHOUT ROWID;

CREATE INDEX change_log_at ON change_log (at);

-- Facts about the database itself: `database_id` tells a checkpoint of this
-- database's snapshots from one of another database at the same path.
CREATE TABLE meta (
    key    TEXT PRIMARY KEY,
    value  TEXT NOT NULL
) WITHOUT ROWID;

INSERT INTO meta (key, value) VALUES ('database_id', lower(hex(randomblob(16))));
