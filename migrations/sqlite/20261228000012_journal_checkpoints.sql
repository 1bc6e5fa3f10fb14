-- Membership checkpoints: a segment's members at a point of its journal, so
-- that the members at an instant are worked out from the nearest one (at
-- most a few thousand transitions away) rather than from the members now.
-- `through_id`: the members after every transition of the site up to this
-- id; `at`: an instant that splits the journal there (no transition up to
-- `through_id` is later, none after it earlier); `ids`: the members,
-- ascending, as LEB128 varints of the gaps between them. Derived from the
-- transitions: written by the sweep, deleted with them by a trim, and never
-- copied (a copy's sweep makes them again).
CREATE TABLE journal_checkpoints (
    site_id     INTEGER NOT NULL,
    segment_id  INTEGER NOT NULL,
    through_id  INTEGER NOT NULL,
    at          INTEGER NOT NULL,
    members     INTEGER NOT NULL,
    ids         BLOB    NOT NULL,
    PRIMARY KEY (site_id, segment_id, through_id)
) WITHOUT ROWID;
