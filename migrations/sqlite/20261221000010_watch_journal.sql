-- Webhooks follow the membership journal: a watch is now the position of
-- the last transition of its segment that was turned into notifications
-- (its instant and id; 0 and 0 before any). The columns the watches had
-- before (change-log position, clock, version, state) and their stored
-- members (segment_members) are no longer written; they stay, so that the
-- release before this one still finds them.
ALTER TABLE segment_watches ADD COLUMN after_at INTEGER NOT NULL DEFAULT 0;
ALTER TABLE segment_watches ADD COLUMN after_id INTEGER NOT NULL DEFAULT 0;
