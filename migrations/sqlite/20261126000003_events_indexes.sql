-- Segments are evaluated from an in-memory snapshot of the audience, not by
-- queries on this table, so the two indexes that ordered events by time are
-- no longer read; they only slowed every import, since each insert landed at
-- a random place in both. One index remains, for reading the details of one
-- type's events in stored order: an index on (site_id, type) ends with the
-- rowid, so it is in id order within a type, and new events append at the
-- end of their type's range.
DROP INDEX events_subscriber;
DROP INDEX events_site_type;
CREATE INDEX events_site_type ON events (site_id, type);
