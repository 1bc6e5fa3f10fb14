-- The membership journal: every change of every kept segment's members,
-- written in the transaction of the write that caused it.

-- One row per change of membership, in commit order (ids grow with it, and
-- `at` never goes back within a site). `added` is 1 for a join, 0 for a
-- leave; `reason` is 0 data, 1 time_window, 2 definition_changed,
-- 3 segment_discarded, 4 segment_restored, 5 manual.
CREATE TABLE segment_transitions (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    site_id        INTEGER NOT NULL,
    segment_id     INTEGER NOT NULL,
    subscriber_id  INTEGER NOT NULL,
    at             INTEGER NOT NULL,
    added          INTEGER NOT NULL,
    reason         INTEGER NOT NULL
);

CREATE INDEX segment_transitions_segment ON segment_transitions (site_id, segment_id, at, id);
CREATE INDEX segment_transitions_subscriber ON segment_transitions (subscriber_id, id);

-- The segments each subscriber is in as the journal has it: a JSON array of
-- segment ids, ascending; no row for a subscriber in none.
CREATE TABLE journal_members (
    site_id        INTEGER NOT NULL,
    subscriber_id  INTEGER NOT NULL,
    segments       TEXT    NOT NULL,
    PRIMARY KEY (site_id, subscriber_id)
) WITHOUT ROWID;

-- Per segment: the version of the definition its journaled members follow
-- (NULL until its baseline is taken), whether it was kept then, when its
-- history begins, and how many members it has now.
CREATE TABLE segment_journals (
    site_id     INTEGER NOT NULL,
    segment_id  INTEGER NOT NULL,
    version     INTEGER,
    kept        INTEGER NOT NULL,
    begins_at   INTEGER,
    members     INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (site_id, segment_id)
) WITHOUT ROWID;

-- Joins and leaves per segment and UTC day (`day` is the day's first
-- millisecond): daily, weekly and monthly series read these, not every
-- transition.
CREATE TABLE journal_days (
    site_id     INTEGER NOT NULL,
    segment_id  INTEGER NOT NULL,
    day         INTEGER NOT NULL,
    added       INTEGER NOT NULL,
    removed     INTEGER NOT NULL,
    PRIMARY KEY (site_id, segment_id, day)
) WITHOUT ROWID;

-- Per site: the latest transition's instant (a later one is never
-- earlier), when the time windows were last swept, and how many baselines
-- were taken (a server's copy of the members is good while it matches).
CREATE TABLE journal_sites (
    site_id    INTEGER PRIMARY KEY,
    last_at    INTEGER NOT NULL DEFAULT 0,
    swept_at   INTEGER NOT NULL DEFAULT 0,
    baselines  INTEGER NOT NULL DEFAULT 0
);

-- Segments that exist now: their history begins at their baseline, taken
-- by the first server that starts with this release.
INSERT INTO segment_journals (site_id, segment_id, version, kept, begins_at, members)
SELECT site_id, id, NULL, discarded_at IS NULL, NULL, 0 FROM segments;
