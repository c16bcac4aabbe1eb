"""Who runs turns in the background: the in-process runner (embedded mode)."""
