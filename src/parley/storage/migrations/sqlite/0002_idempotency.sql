-- Idempotency-Key on POST: a client that retries after a lost response gets the same message back.
ALTER TABLE parley_messages ADD COLUMN idempotency_key TEXT;
ALTER TABLE parley_messages ADD COLUMN request_hash TEXT;
CREATE UNIQUE INDEX parley_messages_idempotency ON parley_messages (user_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
