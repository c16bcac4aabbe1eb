"""The interface the API uses to have turns run, whatever runs them."""

from __future__ import annotations

from typing import Protocol


class Runner(Protocol):
    """Runs every pending message of a session, one at a time, in arrival order."""

    async def start(self) -> None:
        """Begin running; pick up messages a previous process left pending."""

    def notify(self, session_id: str) -> None:
        """A message was accepted for ``session_id``: make sure its turns get run."""

    def cancel(self, message_id: str) -> None:
        """Cancel the message's turn if it is running or about to run here."""

    async def stop(self, *, grace: float) -> None:
        """Stop taking turns; give running ones ``grace`` seconds, leave the rest pending."""

    @property
    def running(self) -> bool:
        """Whether the runner is accepting work (for readiness)."""
