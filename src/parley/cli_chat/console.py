"""The terminal: what the chat reads and writes, on a TTY or through pipes.

Replies go to standard output and everything else — notes, questions, errors — to standard error, so
``echo hi | parley chat > reply.txt`` keeps only what the assistant said. Prompts are shown only on a
terminal: piped input is read line by line without them.
"""

from __future__ import annotations

import sys
from typing import TextIO

from parley.cli_chat.ctrl_c import CtrlC


class Console:
    """Reads a person's lines; writes the assistant's words as they come, and the chat's own notes."""

    def __init__(
        self,
        *,
        stdin: TextIO | None = None,
        stdout: TextIO | None = None,
        stderr: TextIO | None = None,
        interactive: bool | None = None,
        ctrl_c: CtrlC | None = None,
    ) -> None:
        self._in = stdin or sys.stdin
        # Every read and write first raises a Ctrl-C that a library swallowed (ctrl_c.py).
        self.ctrl_c = ctrl_c or CtrlC()
        self._out = stdout or sys.stdout
        self._err = stderr or sys.stderr
        self.interactive = self._in.isatty() if interactive is None else interactive
        self._line_open = False
        if self.interactive and self._in is sys.stdin:
            # Line editing and history for input(); importing it is all it takes.
            import readline  # noqa: F401

    def read(self, prompt: str) -> str | None:
        """The next line the person typed, without its newline; None at the end of input."""
        self.ctrl_c.raise_if_pressed()
        self.end_line()
        if self.interactive and self._in is sys.stdin:
            try:
                return input(prompt)
            except EOFError:
                self._err.write("\n")
                return None
        if self.interactive:
            self._out.write(prompt)
            self._out.flush()
        line = self._in.readline()
        return None if line == "" else line.rstrip("\r\n")

    def write_reply(self, text: str) -> None:
        """Part of the assistant's reply, shown at once."""
        self.ctrl_c.raise_if_pressed()
        if not text:
            return
        self._out.write(text)
        self._out.flush()
        self._line_open = not text.endswith("\n")

    def end_line(self) -> None:
        """End the reply's line, if one is open."""
        if self._line_open:
            self._out.write("\n")
            self._out.flush()
            self._line_open = False

    def note(self, text: str) -> None:
        """Something the chat itself says (a session id, a restart, how to continue)."""
        self.ctrl_c.raise_if_pressed()
        self.end_line()
        self._err.write(f"[{text}]\n")
        self._err.flush()

    def say(self, text: str) -> None:
        """A question or a notice the person must read, as it is (an interrupt's question)."""
        self.ctrl_c.raise_if_pressed()
        self.end_line()
        self._err.write(f"{text}\n")
        self._err.flush()

    def error(self, text: str) -> None:
        """Something that went wrong, in one line."""
        self.ctrl_c.raise_if_pressed()
        self.end_line()
        self._err.write(f"error: {text}\n")
        self._err.flush()
