-- Membership-change webhooks: who is in each watched segment, and the
-- notifications waiting to be delivered (an outbox written in the same
-- transaction as the membership it reports).

CREATE TABLE webhooks (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    site_id        INTEGER NOT NULL REFERENCES sites (id),
    url            TEXT    NOT NULL,
    -- The watched segments' ids and the events wanted, as JSON arrays.
    segment_ids    TEXT    NOT NULL,
    events         TEXT    NOT NULL,
    -- The signing secret (shown once, when the webhook is created).
    secret         TEXT    NOT NULL,
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL,
    -- Set when deliveries failed for 3 days; a PATCH clears it.
    disabled_at    INTEGER,
    -- When the current run of failed deliveries began.
    failing_since  INTEGER,
    -- A server delivering holds the webhook until then (Unix ms).
    leased_until   INTEGER
);

CREATE INDEX webhooks_site ON webhooks (site_id);

-- One row per watched segment: the change-log position and the moment its
-- members were last worked out at, and the segment version they reflect.
CREATE TABLE segment_watches (
    site_id     INTEGER NOT NULL,
    segment_id  INTEGER NOT NULL,
    seq         INTEGER NOT NULL,
    checked_at  INTEGER NOT NULL,
    version     INTEGER NOT NULL,
    kept        INTEGER NOT NULL,
    PRIMARY KEY (site_id, segment_id)
) WITHOUT ROWID;

CREATE TABLE segment_members (
    site_id        INTEGER NOT NULL,
    segment_id     INTEGER NOT NULL,
    subscriber_id  INTEGER NOT NULL,
    PRIMARY KEY (site_id, segment_id, subscriber_id)
) WITHOUT ROWID;

-- The outbox: one row per notification, delivered in id order per webhook.
CREATE TABLE webhook_deliveries (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    site_id          INTEGER NOT NULL,
    webhook_id       INTEGER NOT NULL,
    -- Stable across retries: receivers deduplicate on it.
    event_id         TEXT    NOT NULL,
    -- The notification as sent (a JSON object).
    notification     TEXT    NOT NULL,
    created_at       INTEGER NOT NULL,
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  INTEGER NOT NULL,
    last_status      INTEGER,
    last_error       TEXT,
    delivered_at     INTEGER
);

CREATE INDEX webhook_deliveries_pending ON webhook_deliveries (webhook_id, delivered_at, id);
