-- The job queue (procrastinate, whose own schema is applied just before Parley's migrations) wakes its
-- workers when a job is inserted, but not when a job leaves 'doing': the next job of the same session,
-- waiting on the session's lock, would wait for the workers' next poll. This trigger announces the freed
-- lock the way procrastinate announces a new job, so the next turn of a session starts at once.
-- It speaks procrastinate's notification format (channel names and payload of its 3.x series); check it
-- when upgrading procrastinate.
CREATE OR REPLACE FUNCTION parley_notify_job_left_doing() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    payload text := json_build_object('type', 'job_inserted', 'job_id', OLD.id)::text;
BEGIN
    PERFORM pg_notify('procrastinate_queue_v1#' || OLD.queue_name, payload);
    PERFORM pg_notify('procrastinate_any_queue_v1', payload);
    RETURN NULL;
END;
$$;

CREATE TRIGGER parley_job_left_doing_update AFTER UPDATE OF status ON procrastinate_jobs
    FOR EACH ROW WHEN (OLD.status = 'doing' AND NEW.status <> 'doing')
    EXECUTE FUNCTION parley_notify_job_left_doing();

CREATE TRIGGER parley_job_left_doing_delete AFTER DELETE ON procrastinate_jobs
    FOR EACH ROW WHEN (OLD.status = 'doing')
    EXECUTE FUNCTION parley_notify_job_left_doing();
