-- What the turn's model calls cost: calls, errors, tokens, latency.
ALTER TABLE parley_messages ADD COLUMN usage TEXT;
