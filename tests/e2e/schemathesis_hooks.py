"""Schemathesis hooks for the API contract test (loaded through ``SCHEMATHESIS_HOOKS``).

Only one: every valid ``Idempotency-Key`` Schemathesis generates is made unique. Generation reuses a
few values ("0", "00", …) across unrelated requests, and a key reused with a different request is
refused with ``422`` by design (the IETF Idempotency-Key draft; docs/api.md) — which the check that
schema-valid requests are accepted would report, although that refusal is the point of the header. The
key's replay behaviour has its own tests; invalid keys (empty, too long) are left as generated, so
their rejection is still checked.
"""

from __future__ import annotations

import itertools
import uuid
from typing import Any

import schemathesis

_MAX_KEY = 200
_numbers = itertools.count()
# Keys outlive a run in the server's data: a run on data an earlier run left must not meet its keys.
_RUN = uuid.uuid4().hex[:8]


@schemathesis.hook
def before_call(context: Any, case: Any, **kwargs: Any) -> None:
    headers = case.headers or {}
    for name in list(headers):
        if name.lower() == "idempotency-key":
            key = headers[name]
            if isinstance(key, str) and 1 <= len(key) <= _MAX_KEY:
                headers[name] = f"{_RUN}-{next(_numbers)}:{key}"[:_MAX_KEY]
