-- The events of each message's turn (see the SQLite migration 0006 and storage/events.py).
ALTER TABLE parley_messages ADD COLUMN event_seq BIGINT NOT NULL DEFAULT 0;
CREATE TABLE parley_message_events (
    message_id  TEXT NOT NULL REFERENCES parley_messages (message_id) ON DELETE CASCADE,
    first_seq   BIGINT NOT NULL,
    last_seq    BIGINT NOT NULL,
    events      TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    PRIMARY KEY (message_id, first_seq)
);
CREATE INDEX parley_message_events_created ON parley_message_events (created_at);
INSERT INTO parley_message_events (message_id, first_seq, last_seq, events, created_at)
    SELECT message_id, 1, 1, json_build_array(json_build_array('done', json_build_object('status', status)))::text,
           coalesce(finished_at, updated_at)
    FROM parley_messages WHERE status NOT IN ('queued', 'running');
UPDATE parley_messages SET event_seq = 1 WHERE status NOT IN ('queued', 'running');
