"""Durable storage: Parley's own tables (sessions, messages, transcript), migrations, checkpointer."""
