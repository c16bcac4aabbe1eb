-- API keys (storage/api_keys.py): only a SHA-256 of each key's secret is kept, never the secret. A revoked
-- key keeps its row (revoked_at set), so `parley keys list` and the interrupts it answered still name it.
CREATE TABLE parley_api_keys (
    key_id       TEXT PRIMARY KEY,
    secret_hash  TEXT NOT NULL,
    name         TEXT,
    role         TEXT NOT NULL CHECK (role IN ('service', 'user', 'operator', 'admin')),
    user_id      TEXT,
    created_at   TEXT NOT NULL,
    revoked_at   TEXT,
    CHECK ((role = 'user') = (user_id IS NOT NULL))
);

-- Who answered an interrupt, written by the transaction that claims it (storage/interrupts.py: claim):
-- the authenticated key (id, name, role) — or, with PARLEY_AUTH=off, the user id the caller claimed,
-- marked 'unauthenticated' in answered_via. answered_by stays the id of the answering message.
ALTER TABLE parley_interrupts ADD COLUMN answered_at TEXT;
ALTER TABLE parley_interrupts ADD COLUMN answered_via TEXT;
ALTER TABLE parley_interrupts ADD COLUMN answered_role TEXT;
ALTER TABLE parley_interrupts ADD COLUMN answered_key_id TEXT;
ALTER TABLE parley_interrupts ADD COLUMN answered_key_name TEXT;
ALTER TABLE parley_interrupts ADD COLUMN answered_user_id TEXT;

-- GET /v1/interrupts/{id} finds an interrupt by its id alone (the primary key starts with the session).
CREATE INDEX parley_interrupts_by_id ON parley_interrupts (interrupt_id);
