"""Turn execution, per-session ordering and events: no HTTP, no SQL."""
