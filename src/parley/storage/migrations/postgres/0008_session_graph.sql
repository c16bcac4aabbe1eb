-- Several graphs per service (PARLEY_GRAPHS; docs/graphs.md): the graph a session was created with, which
-- runs all its turns. NULL (sessions made before this column) is the service's default graph.
ALTER TABLE parley_sessions ADD COLUMN graph TEXT;
