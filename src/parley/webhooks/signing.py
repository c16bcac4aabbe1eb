"""Signing deliveries the Standard Webhooks way (https://www.standardwebhooks.com), with the reference
implementation (``standardwebhooks``), so that any receiver that verifies by that spec verifies Parley's.

``PARLEY_WEBHOOK_SECRET`` may hold several secrets: each delivery carries one signature per secret in its
``webhook-signature`` header (space-separated, as the spec allows). To rotate, add the new secret beside
the old, move every receiver to the new one, then drop the old.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from standardwebhooks.webhooks import Webhook

SECRET_PREFIX = "whsec_"  # noqa: S105 - the prefix of every secret, not one


class Signer:
    """Makes the three signature headers of one request."""

    def __init__(self, secrets: Sequence[str]) -> None:
        if not secrets:
            raise ValueError("at least one secret is needed")
        self._signers = [Webhook(secret) for secret in secrets]

    def headers(self, *, webhook_id: str, body: bytes, at: datetime) -> dict[str, str]:
        """``webhook-id``, ``webhook-timestamp`` (whole seconds, as signed) and ``webhook-signature``."""
        signatures = " ".join(signer.sign(webhook_id, at, body) for signer in self._signers)
        return {
            "webhook-id": webhook_id,
            "webhook-timestamp": str(int(at.timestamp())),
            "webhook-signature": signatures,
        }
