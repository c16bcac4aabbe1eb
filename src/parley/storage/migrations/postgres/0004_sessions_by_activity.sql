-- GET /v1/sessions lists a user's sessions by last activity (updated_at), newest first, a page at a time
-- after a (updated_at, session_id) position (storage/sessions.py: page). With this index a page is read
-- off the index in order, however many sessions the user has, instead of sorting them all every time.
-- It starts with user_id, so it serves every lookup the index it replaces served.
CREATE INDEX parley_sessions_activity ON parley_sessions (user_id, updated_at, session_id);
DROP INDEX parley_sessions_user;
