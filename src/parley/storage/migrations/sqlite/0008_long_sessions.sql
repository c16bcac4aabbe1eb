-- A rewind (POST /v1/sessions/{id}/rewind) leaves later lines of the transcript off the session's
-- current branch: they stay, marked with when and by which rewind message (storage/transcript.py).
-- NULL: the line is on the branch.
ALTER TABLE parley_transcript ADD COLUMN rewound_at TEXT;
ALTER TABLE parley_transcript ADD COLUMN rewound_by TEXT;

-- A session's pending messages, in order (storage/messages.py: pending_head, first_pending_id — every turn
-- asks, at least twice). Through the (session_id, seq) index the lookup walked every message the session
-- ever had to find the few pending ones, so a turn cost more the longer the conversation (bench: turn
-- 10,000 took 2.7× turn 10). The condition is written as those queries write it, so SQLite uses it.
CREATE INDEX parley_messages_session_pending ON parley_messages (session_id, seq)
    WHERE status IN ('queued', 'running');
