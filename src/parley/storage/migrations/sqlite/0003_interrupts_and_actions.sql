-- Pending interrupts, one row each: the atomic claim that makes a resume win exactly once, and the
-- operator queue across sessions.
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

-- Who answered a resume message (the session's user, or an operator).
ALTER TABLE parley_messages ADD COLUMN actor TEXT;

-- Side effects, once each: the key derives from the AI message and tool call that asked for it, and the
-- effect and its key commit in one transaction, so a re-run finds the result instead of acting again.
CREATE TABLE parley_actions (
    action_key  TEXT PRIMARY KEY,
    session_id  TEXT NOT NULL,
    name        TEXT NOT NULL,
    args        TEXT NOT NULL,
    result      TEXT NOT NULL,
    created_at  TEXT NOT NULL
);

-- The bundled assistant's demo shop.
CREATE TABLE parley_orders (
    order_id    TEXT PRIMARY KEY,
    session_id  TEXT NOT NULL,
    user_id     TEXT NOT NULL,
    item        TEXT NOT NULL,
    quantity    INTEGER NOT NULL,
    total       REAL NOT NULL,
    action_key  TEXT NOT NULL UNIQUE,
    created_at  TEXT NOT NULL
);
CREATE TABLE parley_refunds (
    refund_id   TEXT PRIMARY KEY,
    order_id    TEXT NOT NULL,
    amount      REAL NOT NULL,
    action_key  TEXT NOT NULL UNIQUE,
    created_at  TEXT NOT NULL
);
