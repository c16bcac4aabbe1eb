-- When the turn first performed an action (through Store.perform_once): from then on it can no longer be
-- cancelled, since rolling its state back would not undo the action.
ALTER TABLE parley_messages ADD COLUMN acted_at TEXT;
-- When a cancel of the running turn was recorded: from then on the turn may perform no action. The two
-- columns are set in guarded transactions, so a cancel and an action cannot both win.
ALTER TABLE parley_messages ADD COLUMN cancel_requested_at TEXT;
