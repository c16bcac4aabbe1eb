-- A cancel asked for while the turn runs in another process (a worker): the runner that holds the turn
-- hears of it through a notification, and one about to start finds it here.
ALTER TABLE parley_messages ADD COLUMN cancel_requested INTEGER NOT NULL DEFAULT 0;
