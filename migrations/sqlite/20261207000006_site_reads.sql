-- A site's read costs what the site holds. Reading a site's subscribers and
-- events in id order used to walk a range of rowids, with every other site's
-- rows in that range filtered out one by one (and, to find the range,
-- `min(id), max(id)` over the whole table, which SQLite answers by a scan):
-- a site of 100 subscribers beside one of 10 million was read as slowly as
-- the big one. An index on `site_id` ends with the rowid, so it lists one
-- site's rows in id order and nothing else, and its lowest and highest entry
-- of a site are one seek each. New rows of a site land at the end of the
-- site's range of the index. Creating them walks each table once, at the
-- first start of this release (about a second per million events).
CREATE INDEX subscribers_site ON subscribers (site_id);
CREATE INDEX events_site ON events (site_id);
