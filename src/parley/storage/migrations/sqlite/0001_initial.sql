-- Parley's own tables. LangGraph's checkpointer keeps its tables in a file of its own.
CREATE TABLE parley_sessions (
    session_id  TEXT PRIMARY KEY,
    user_id     TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);
CREATE INDEX parley_sessions_user ON parley_sessions (user_id);

-- seq is the global arrival order: turns of one session run in seq order.
CREATE TABLE parley_messages (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    message_id   TEXT NOT NULL UNIQUE,
    session_id   TEXT NOT NULL REFERENCES parley_sessions (session_id) ON DELETE CASCADE,
    user_id      TEXT NOT NULL,
    kind         TEXT NOT NULL,
    content      TEXT,
    resume       TEXT,
    status       TEXT NOT NULL,
    reply        TEXT,
    interrupt    TEXT,
    error        TEXT,
    attempts     INTEGER NOT NULL DEFAULT 0,
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL,
    started_at   TEXT,
    finished_at  TEXT
);
CREATE INDEX parley_messages_session ON parley_messages (session_id, seq);
CREATE INDEX parley_messages_pending ON parley_messages (status)
    WHERE status IN ('queued', 'running');

-- position = 2 * seq + (0 for the user's line, 1 for the assistant's): the conversation in the
-- order the graph saw it, whatever order the rows were written in.
CREATE TABLE parley_transcript (
    session_id  TEXT NOT NULL REFERENCES parley_sessions (session_id) ON DELETE CASCADE,
    position    INTEGER NOT NULL,
    message_id  TEXT NOT NULL,
    role        TEXT NOT NULL CHECK (role IN ('user', 'assistant')),
    content     TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    PRIMARY KEY (session_id, position)
);
