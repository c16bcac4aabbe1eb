"""What ``parley chat`` is started with (kept apart from the client, so ``parley``'s parser can name the
defaults without importing an HTTP client)."""

from __future__ import annotations

import getpass
from dataclasses import dataclass

DEFAULT_URL = "http://127.0.0.1:8000"


def default_user() -> str:
    """The user the chat speaks as without ``--user``: the login name."""
    return getpass.getuser()


@dataclass(frozen=True)
class ChatOptions:
    """The service, who speaks, which session; and the pace of waiting and reconnecting."""

    url: str = DEFAULT_URL
    user_id: str = ""
    """Empty: ``default_user()`` — or, with an ``api_key``, the user the key is bound to."""
    api_key: str | None = None
    """Sent as ``Authorization: Bearer`` (``--api-key``, ``PARLEY_API_KEY``)."""
    session_id: str | None = None
    graph: str | None = None
    """The graph a new session is created with (``--graph``); None: the service's default."""
    poll_seconds: float = 1.0
    """How often the session is read while an operator reviews a reply."""
    reconnect_seconds: float = 30.0
    """How long a cut stream is reopened for before the chat gives up on it."""
