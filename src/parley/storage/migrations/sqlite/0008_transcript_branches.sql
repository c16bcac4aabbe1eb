-- A rewind (POST /v1/sessions/{id}/rewind) leaves later lines of the transcript off the session's
-- current branch: they stay, marked with when and by which rewind message (storage/transcript.py).
-- NULL: the line is on the branch.
ALTER TABLE parley_transcript ADD COLUMN rewound_at TEXT;
ALTER TABLE parley_transcript ADD COLUMN rewound_by TEXT;
