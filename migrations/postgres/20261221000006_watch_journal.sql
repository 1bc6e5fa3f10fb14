-- Webhooks follow the membership journal (see
-- migrations/sqlite/20261221000010_watch_journal.sql).
ALTER TABLE segment_watches ADD COLUMN after_at BIGINT NOT NULL DEFAULT 0;
ALTER TABLE segment_watches ADD COLUMN after_id BIGINT NOT NULL DEFAULT 0;
