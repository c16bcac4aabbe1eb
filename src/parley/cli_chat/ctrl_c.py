"""Ctrl-C that always leaves the chat, wherever it lands.

Python turns SIGINT into a ``KeyboardInterrupt`` raised wherever the main thread happens to be. When that
is inside a finalizer — an abandoned generator of httpx's closed as it is freed, which is how a stream's
nested readers end — the interpreter prints "Exception ignored in …" and carries on: the person pressed
Ctrl-C, saw a traceback, and was given the prompt again. So the handler also *remembers* the press, and
the chat looks at that memory wherever it is about to wait or show something (``raise_if_pressed``): a
press swallowed by a finalizer is raised again there, at the latest before the next prompt. And the
interpreter's report of it ("Exception ignored in …" and a traceback on the person's terminal) is left
out: that press is not lost, only late.
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType


class CtrlC:
    """Whether Ctrl-C was pressed since the handler was installed."""

    def __init__(self) -> None:
        self.pressed = False

    def raise_if_pressed(self) -> None:
        """Raise the ``KeyboardInterrupt`` of a press that something swallowed."""
        if self.pressed:
            raise KeyboardInterrupt

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.pressed = True
        raise KeyboardInterrupt

    def _unraisable(self, report: sys.UnraisableHookArgs) -> None:
        """A ``KeyboardInterrupt`` of ours swallowed by a finalizer is kept quiet (``raise_if_pressed``
        raises it again); anything else is reported as Python would."""
        if isinstance(report.exc_value, KeyboardInterrupt) and self.pressed:
            return
        sys.__unraisablehook__(report)

    @contextmanager
    def installed(self) -> Iterator[CtrlC]:
        """Handle SIGINT while the block runs (only the main thread may install a handler: elsewhere,
        as in a test calling the chat from a thread, it is left as it is)."""
        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        previous = signal.signal(signal.SIGINT, self._handle)
        previous_hook = sys.unraisablehook
        sys.unraisablehook = self._unraisable
        try:
            yield self
        finally:
            sys.unraisablehook = previous_hook
            signal.signal(signal.SIGINT, previous)
