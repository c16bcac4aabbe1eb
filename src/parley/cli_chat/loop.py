"""The conversation: read a line, stream the turn it starts, answer what the turn asks, again.

A turn that pauses is settled before the next prompt: the person answers a confirmation or a question
at the prompt (``answers.py``) and the resume's turn is streamed in turn; a review is an operator's, so
the chat says so and waits, polling the session until the review is answered, then streams the turn the
operator's answer started. Ctrl-C or the end of input leaves at any point, saying how to continue: the
turns themselves go on at the server either way.
"""

from __future__ import annotations

import time
from typing import Any

from parley.cli_chat.answers import QUIT_WORDS, ask_answer, question_of
from parley.cli_chat.client import ApiError, ChatError, ParleyClient, TurnStream
from parley.cli_chat.console import Console
from parley.cli_chat.options import DEFAULT_URL, ChatOptions, default_user

HELP = """Commands:
  /new           start a new session with the next message
  /session       show this session's id; /session ID continues another session of yours
  /help          this list
  /quit          leave (so does Ctrl-D; Ctrl-C leaves at any time)
Anything else is sent as a message."""


class _Quit(Exception):
    """The person left while the chat was asking something."""


def run_chat(options: ChatOptions, console: Console | None = None) -> int:
    """Run the chat until the person leaves; the exit status (1 when input was piped and something
    failed, 130 after Ctrl-C)."""
    console = console or Console()
    client = ParleyClient(
        base_url=options.url,
        user_id=options.user_id or ("" if options.api_key else default_user()),
        api_key=options.api_key,
        reconnect_seconds=options.reconnect_seconds,
        on_reconnect=lambda: console.note("the connection dropped; reconnecting"),
    )
    chat = Chat(client=client, console=console, options=options)
    try:
        with console.ctrl_c.installed():
            return chat.run()
    except KeyboardInterrupt:
        console.ctrl_c.pressed = False  # seen: the goodbye may write
        chat.say_goodbye()
        return 130
    finally:
        client.close()


class Chat:
    """One person's conversation through one client."""

    def __init__(self, *, client: ParleyClient, console: Console, options: ChatOptions) -> None:
        self.client = client
        self.console = console
        self.options = options
        self.session_id = options.session_id
        self.failed = False

    def run(self) -> int:
        """Converse until the end of input or ``/quit``."""
        if self.console.interactive:
            speaker = self.client.user_id or "the API key's user"
            self.console.note(f"Parley at {self.client.base_url} as {speaker} — /help lists commands")
        try:
            if self.session_id is not None and not self._attach(self.session_id):
                return 1
            while True:
                line = self.console.read("> ")
                if line is None:
                    break
                text = line.strip()
                if not text:
                    continue
                if text.startswith("/"):
                    if not self._command(text):
                        break
                    continue
                self._send(text)
        except _Quit:
            pass
        self.say_goodbye()
        return 1 if self.failed and not self.console.interactive else 0

    def say_goodbye(self) -> None:
        """Leave, saying how to come back to the session."""
        self.console.end_line()
        if self.session_id is not None:
            self.console.note(f"to continue this session: {self._continue_command()}")

    def _continue_command(self) -> str:
        words = ["parley chat", f"--session {self.session_id}"]
        if self.client.base_url != DEFAULT_URL:
            words.append(f"--url {self.client.base_url}")
        if self.client.user_id and self.client.user_id != default_user():
            words.append(f"--user {self.client.user_id}")
        return " ".join(words)

    # -- commands -------------------------------------------------------------------------------

    def _command(self, text: str) -> bool:
        """Run a ``/command``; False to leave."""
        word, _, rest = text.partition(" ")
        if word in QUIT_WORDS:
            return False
        if word == "/help":
            self.console.say(HELP)
        elif word == "/new":
            self.session_id = None
            self.console.note("the next message starts a new session")
        elif word == "/session" and rest.strip():
            previous = self.session_id
            if not self._attach(rest.strip()):
                self.session_id = previous
        elif word == "/session":
            self.console.note(f"session {self.session_id}" if self.session_id else "no session yet")
        else:
            self.console.error(f"unknown command {word}; /help lists them")
        return True

    def _attach(self, session_id: str) -> bool:
        """Continue an existing session: settle what it waits on, or follow its running turn."""
        try:
            session = self.client.session(session_id)
        except ChatError as exc:
            self._fail(exc)
            return False
        self.session_id = session_id
        self.console.note(
            f"session {session_id}: {session.get('message_count', 0)} messages, {session['status']}"
        )
        self._settle(self._catch_up(session))
        return True

    def _catch_up(self, session: dict[str, Any]) -> dict[str, Any] | None:
        """What a session read from the server leaves to do: its pending interrupts, or its turn."""
        pending = session.get("pending_interrupts") or []
        if pending:
            return {"status": "interrupted", "interrupt": pending}
        last = session.get("last_message_id")
        if session.get("status") == "busy" and last:
            return self._stream(self.client.follow(last))
        return None

    # -- turns ----------------------------------------------------------------------------------

    def _send(self, text: str) -> None:
        try:
            # Only a new session takes the graph: a session keeps its own (naming another is refused).
            graph = self.options.graph if self.session_id is None else None
            turn = self.client.chat(message=text, session_id=self.session_id, graph=graph)
        except ChatError as exc:
            self._fail(exc)
            return
        if self.session_id is None and turn.session_id:
            self._started(turn.session_id)
        self._settle(self._stream(turn))

    def _started(self, session_id: str) -> None:
        self.session_id = session_id
        self.console.note(f"new session {session_id}")

    def _stream(self, turn: TurnStream) -> dict[str, Any] | None:
        """Show a turn's reply as it streams; its final message (the ``done`` event), or None if the
        stream was lost."""
        streamed, reported, done = "", False, None
        try:
            for event in turn:
                if event.kind == "token":
                    self.console.write_reply(event.text)
                    streamed += event.text
                elif (
                    event.kind == "status"
                    and event.data.get("status") == "running"
                    and (streamed or event.attempt > 1)
                ):
                    # Every start of the turn after the first (a retry, a restart of the server) streams
                    # the reply from its beginning: the words shown so far are void.
                    self.console.note(f"the reply restarts (attempt {event.attempt})")
                    streamed = ""
                elif event.kind == "error":
                    self._fail(event.data.get("detail") or "the turn failed")
                    reported = True
                elif event.kind == "done":
                    done = event.data
        except ChatError as exc:
            self._fail(exc)
            return None
        finally:
            turn.close()
        if done is not None:
            self._show_outcome(done, streamed=streamed, reported=reported)
        return done

    def _show_outcome(self, done: dict[str, Any], *, streamed: str, reported: bool) -> None:
        if self.session_id is None and done.get("session_id"):
            self._started(str(done["session_id"]))
        status = done.get("status")
        reply = done.get("reply")
        if status == "completed" and isinstance(reply, str):
            if not streamed:
                # Nothing streamed: a reply held back for a possible review, or one an operator approved.
                self.console.write_reply(reply)
            elif streamed.strip() != reply.strip():
                self.console.note("the final reply")
                self.console.write_reply(reply)
        elif status == "failed" and not reported:
            error = done.get("error") or {}
            self._fail(error.get("detail") or "the turn failed")
        elif status == "cancelled":
            self.console.note("the turn was cancelled")
        self.console.end_line()

    def _settle(self, outcome: dict[str, Any] | None) -> None:
        """Answer what the turn waits on, and what the answers' turns wait on, until none waits."""
        while outcome is not None and outcome.get("status") == "interrupted":
            pending: list[dict[str, Any]] = outcome.get("interrupt") or []
            mine = [item for item in pending if item.get("kind") != "review"]
            if mine:
                outcome = self._answer(mine[0], outcome)
            elif pending:
                outcome = self._wait_for_operator(pending)
            else:
                return

    def _answer(self, interrupt: dict[str, Any], outcome: dict[str, Any]) -> dict[str, Any] | None:
        answer = ask_answer(interrupt, self.console)
        if answer is None:
            raise _Quit
        assert self.session_id is not None
        try:
            turn = self.client.resume(
                session_id=self.session_id, interrupt_id=str(interrupt["id"]), value=answer.value
            )
        except ApiError as exc:
            self._fail(exc)
            if exc.status == 422:
                return outcome  # asked again
            if exc.status == 409:
                # Answered elsewhere meanwhile (another window, an operator): go on from where it is now.
                try:
                    return self._catch_up(self.client.session(self.session_id))
                except ChatError as again:
                    self._fail(again)
            return None
        except ChatError as exc:
            self._fail(exc)
            return None
        return self._stream(turn)

    def _wait_for_operator(self, reviews: list[dict[str, Any]]) -> dict[str, Any] | None:
        """Wait until an operator has answered the reviews, then show the turn their answer started."""
        assert self.session_id is not None
        self.console.say(question_of(reviews[0]))
        self.console.note(
            "waiting for an operator; Ctrl-C leaves, and the answer is here later with: "
            + self._continue_command()
        )
        waiting_on = {str(item["id"]) for item in reviews}
        while True:
            time.sleep(self.options.poll_seconds)
            self.console.ctrl_c.raise_if_pressed()
            try:
                session = self.client.session(self.session_id)
            except ApiError as exc:
                self._fail(exc)
                return None
            except ChatError:
                continue  # the service is away for a moment: the review waits as long as it takes
            pending = {str(item["id"]) for item in session.get("pending_interrupts") or []}
            last = session.get("last_message_id")
            if not waiting_on & pending and last:
                return self._stream(self.client.follow(str(last)))

    def _fail(self, problem: object) -> None:
        self.failed = True
        self.console.error(str(problem))
