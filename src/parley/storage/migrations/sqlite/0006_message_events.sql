-- The events of each message's turn, kept so that a client reconnecting with Last-Event-ID gets exactly
-- what it missed (storage/events.py). event_seq is the id of the message's latest event: appending
-- events moves it on in the same transaction, so ids are gapless and never reused, whichever process
-- appends. A row holds a run of consecutive events (a JSON list of [kind, data]): a reply's tokens
-- written together take one row, not one each.
ALTER TABLE parley_messages ADD COLUMN event_seq INTEGER NOT NULL DEFAULT 0;
CREATE TABLE parley_message_events (
    message_id  TEXT NOT NULL REFERENCES parley_messages (message_id) ON DELETE CASCADE,
    first_seq   INTEGER NOT NULL,
    last_seq    INTEGER NOT NULL,
    events      TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    PRIMARY KEY (message_id, first_seq)
);
CREATE INDEX parley_message_events_created ON parley_message_events (created_at);
-- Messages that ended before events were kept get their one event: done.
INSERT INTO parley_message_events (message_id, first_seq, last_seq, events, created_at)
    SELECT message_id, 1, 1, json_array(json_array('done', json_object('status', status))),
           coalesce(finished_at, updated_at)
    FROM parley_messages WHERE status NOT IN ('queued', 'running');
UPDATE parley_messages SET event_seq = 1 WHERE status NOT IN ('queued', 'running');
