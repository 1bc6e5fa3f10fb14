-- The audience: subscribers with fields, tags and subscription state, and the
-- events they perform. Timestamps are Unix milliseconds.

CREATE TABLE subscribers (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    site_id          INTEGER NOT NULL REFERENCES sites (id),
    -- Stable public id (32 hex characters), kept across email changes.
    uuid             TEXT    NOT NULL UNIQUE,
    email            TEXT    NOT NULL,
    -- Lowercase email: unique per site.
    email_key        TEXT    NOT NULL,
    -- Field values as one JSON object keyed by normalised field key.
    fields           TEXT    NOT NULL DEFAULT '{}',
    unsubscribed_at  INTEGER,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL
);

CREATE UNIQUE INDEX subscribers_email ON subscribers (site_id, email_key);

CREATE TABLE tags (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    site_id       INTEGER NOT NULL REFERENCES sites (id),
    name          TEXT    NOT NULL,
    -- Lowercase name: unique per site.
    name_key      TEXT    NOT NULL,
    created_at    INTEGER NOT NULL,
    discarded_at  INTEGER
);

CREATE UNIQUE INDEX tags_name ON tags (site_id, name_key);

CREATE TABLE subscriber_tags (
    subscriber_id  INTEGER NOT NULL REFERENCES subscribers (id),
    tag_id         INTEGER NOT NULL REFERENCES tags (id),
    created_at     INTEGER NOT NULL,
    PRIMARY KEY (subscriber_id, tag_id)
) WITHOUT ROWID;

CREATE INDEX subscriber_tags_tag ON subscriber_tags (tag_id, subscriber_id);

CREATE TABLE fields (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    site_id     INTEGER NOT NULL REFERENCES sites (id),
    -- Normalised key, as used in subscribers.fields.
    key         TEXT    NOT NULL,
    -- Display name: the key as first written.
    name        TEXT    NOT NULL,
    created_at  INTEGER NOT NULL
);

CREATE UNIQUE INDEX fields_key ON fields (site_id, key);

-- No foreign keys here: events are the bulk of every import, and checking
-- two parents per row costs a tenth of the import's time. Both ids come from
-- the same transaction that looked them up, and neither parent is ever deleted.
CREATE TABLE events (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    site_id        INTEGER NOT NULL,
    subscriber_id  INTEGER NOT NULL,
    type           TEXT    NOT NULL,
    -- When it happened: the event's own date, or the time it was received.
    occurred_at    INTEGER NOT NULL,
    -- The details object exactly as sent (compact JSON text).
    details        TEXT    NOT NULL DEFAULT '{}',
    -- details.unique.key of a $purchase: stored once per site however often sent.
    unique_key     TEXT,
    -- details.value.amount and currency of a $purchase, as numbers to sum.
    amount         REAL,
    currency       TEXT,
    received_at    INTEGER NOT NULL
);

CREATE INDEX events_subscriber ON events (subscriber_id, type, occurred_at);
CREATE INDEX events_site_type ON events (site_id, type, occurred_at);
CREATE UNIQUE INDEX events_unique_purchase ON events (site_id, type, unique_key) WHERE unique_key IS NOT NULL;
