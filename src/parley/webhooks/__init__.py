"""Completion webhooks: where they may go (``destinations``), how they are signed (``signing``), one
attempt (``sender``), the background sending of the outbox (``deliverer``) and its body (``payload``)."""
