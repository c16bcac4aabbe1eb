-- Completion webhooks (docs/api.md, "Webhooks"; parley/webhooks/).
-- The URL a message's outcome is posted to, as accepted with it (its request's callback_url, or its key's
-- default): storage/messages.py reads it back when the message ends.
ALTER TABLE parley_messages ADD COLUMN callback_url TEXT;
-- A key's default callback_url (`parley keys create --callback-url`), for messages posted without one.
ALTER TABLE parley_api_keys ADD COLUMN callback_url TEXT;

-- The outbox: one row per message that ended with a callback_url, inserted by the transaction that gives
-- the message its terminal status (storage/webhooks.py: enqueue), so a crash between the two cannot lose
-- it. delivery_id is the webhook-id header, the same on every attempt. A process sending it holds a lease
-- (leased_by, leased_until); one that dies mid-send lets it lapse and another takes the row over.
CREATE TABLE parley_webhook_deliveries (
    delivery_id      TEXT PRIMARY KEY,
    message_id       TEXT NOT NULL UNIQUE,
    session_id       TEXT NOT NULL,
    user_id          TEXT NOT NULL,
    url              TEXT NOT NULL,
    status           TEXT NOT NULL CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  TEXT NOT NULL,
    leased_by        TEXT,
    leased_until     TEXT,
    last_error       TEXT,
    created_at       TEXT NOT NULL,
    updated_at       TEXT NOT NULL,
    finished_at      TEXT
);
-- What a deliverer asks every poll: the pending rows that are due, oldest first.
CREATE INDEX parley_webhook_deliveries_due ON parley_webhook_deliveries (next_attempt_at)
    WHERE status = 'pending';
CREATE INDEX parley_webhook_deliveries_session ON parley_webhook_deliveries (session_id);
-- Pruning: finished rows past PARLEY_WEBHOOK_KEEP_DAYS.
CREATE INDEX parley_webhook_deliveries_finished ON parley_webhook_deliveries (finished_at)
    WHERE finished_at IS NOT NULL;

-- Each try, kept for GET /v1/messages/{id}/deliveries: when, how long, the response's status code or the
-- error, and a short excerpt of the response body (never more).
CREATE TABLE parley_webhook_attempts (
    delivery_id       TEXT NOT NULL,
    attempt           INTEGER NOT NULL,
    session_id        TEXT NOT NULL,
    started_at        TEXT NOT NULL,
    duration_ms       REAL NOT NULL,
    outcome           TEXT NOT NULL CHECK (outcome IN ('delivered', 'retry', 'failed')),
    status_code       INTEGER,
    error             TEXT,
    response_excerpt  TEXT,
    PRIMARY KEY (delivery_id, attempt)
);
CREATE INDEX parley_webhook_attempts_session ON parley_webhook_attempts (session_id);
