-- Parley's own tables in PostgreSQL: the same columns as the SQLite schema after its migration 0005,
-- so one set of queries serves both. Timestamps are fixed-width ISO-8601 UTC text (they sort as they
-- read, in both dialects); JSON values are text the store encodes and decodes itself. LangGraph's
-- saver and the job queue create their own tables.
CREATE TABLE parley_sessions (
    session_id  TEXT PRIMARY KEY,
    user_id     TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);
CREATE INDEX parley_sessions_user ON parley_sessions (user_id);

-- seq is the global arrival order: turns of one session run in seq order.
CREATE TABLE parley_messages (
    seq               BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    message_id        TEXT NOT NULL UNIQUE,
    session_id        TEXT NOT NULL REFERENCES parley_sessions (session_id) ON DELETE CASCADE,
    user_id           TEXT NOT NULL,
    kind              TEXT NOT NULL,
    content           TEXT,
    resume            TEXT,
    status            TEXT NOT NULL,
    reply             TEXT,
    interrupt         TEXT,
    error             TEXT,
    attempts          INTEGER NOT NULL DEFAULT 0,
    created_at        TEXT NOT NULL,
    updated_at        TEXT NOT NULL,
    started_at        TEXT,
    finished_at       TEXT,
    idempotency_key   TEXT,
    request_hash      TEXT,
    actor             TEXT,
    usage             TEXT,
    acted_at          TEXT,
    cancel_requested_at TEXT
);
CREATE INDEX parley_messages_session ON parley_messages (session_id, seq);
CREATE INDEX parley_messages_pending ON parley_messages (status) WHERE status IN ('queued', 'running');
CREATE UNIQUE INDEX parley_messages_idempotency ON parley_messages (user_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;

-- position = 2 * seq + (0 for the user's line, 1 for the assistant's).
CREATE TABLE parley_transcript (
    session_id  TEXT NOT NULL REFERENCES parley_sessions (session_id) ON DELETE CASCADE,
    position    BIGINT NOT NULL,
    message_id  TEXT NOT NULL,
    role        TEXT NOT NULL CHECK (role IN ('user', 'assistant')),
    content     TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    PRIMARY KEY (session_id, position)
);

CREATE TABLE parley_interrupts (
    session_id     TEXT NOT NULL REFERENCES parley_sessions (session_id) ON DELETE CASCADE,
    interrupt_id   TEXT NOT NULL,
    message_id     TEXT NOT NULL,
    user_id        TEXT NOT NULL,
    kind           TEXT NOT NULL,
    value          TEXT NOT NULL,
    status         TEXT NOT NULL CHECK (status IN ('pending', 'answered', 'superseded')),
    answered_by    TEXT,
    created_at     TEXT NOT NULL,
    updated_at     TEXT NOT NULL,
    PRIMARY KEY (session_id, interrupt_id)
);
CREATE INDEX parley_interrupts_pending ON parley_interrupts (created_at) WHERE status = 'pending';

-- Side effects, once each (see storage/actions.py).
CREATE TABLE parley_actions (
    action_key  TEXT PRIMARY KEY,
    session_id  TEXT NOT NULL,
    name        TEXT NOT NULL,
    args        TEXT NOT NULL,
    result      TEXT NOT NULL,
    created_at  TEXT NOT NULL
);
