"""``parley chat`` in a pseudo-terminal (pexpect) against a real ``parley serve``: replies stream as they
are generated, interrupts are answered at the prompt, a cut stream is picked up where it broke, errors
read as one line, and piped input works without a terminal."""

from __future__ import annotations

import io
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pexpect
import pytest

from tests.backends import Backend
from tests.e2e.proxy import CuttableProxy
from tests.e2e.server import ServerProcess, create_key, parley_env
from tests.e2e.test_server import ALICE
from tests.waiting import wait_until

ORDER = '[[tool:place_order|{{"item": "mug", "quantity": {quantity}}}]] {quantity} mugs please'
GATED = {"PARLEY_GRAPH": "tests.graphs.gated_stream:build"}


class ChatTerminal:
    """``parley chat`` running in a pseudo-terminal, as a person at a keyboard sees it."""

    def __init__(self, url: str, *args: str, user: str = "alice") -> None:
        self._log = io.StringIO()
        self.child = pexpect.spawn(
            sys.executable,
            ["-m", "parley.cli", "chat", "--url", url, "--user", user, *args],
            env=parley_env(),
            encoding="utf-8",
            timeout=30,
            dimensions=(50, 250),
        )
        self.child.logfile_read = self._log

    @property
    def screen(self) -> str:
        """Everything shown so far (typed lines echoed included), with the terminal's \\r removed."""
        return self._log.getvalue().replace("\r", "")

    def expect(self, text: str) -> None:
        self.child.expect_exact(text)

    def expect_match(self, pattern: str) -> re.Match[str]:
        self.child.expect(pattern)
        match: re.Match[str] = self.child.match
        return match

    def say(self, line: str, *, after: str = "> ") -> None:
        """Wait for the prompt ``after``, then type ``line`` and Enter."""
        self.expect(after)
        self.child.sendline(line)

    def exit_status(self) -> int | None:
        self.child.expect(pexpect.EOF)
        self.child.close()
        status: int | None = self.child.exitstatus
        return status

    def close(self) -> None:
        if self.child.isalive():
            self.child.terminate(force=True)


@pytest.fixture
def terminals() -> Any:
    opened: list[ChatTerminal] = []

    def _open(url: str, *args: str, user: str = "alice") -> ChatTerminal:
        terminal = ChatTerminal(url, *args, user=user)
        opened.append(terminal)
        return terminal

    yield _open
    for terminal in opened:
        terminal.close()


def _last_message(server: ServerProcess, session_id: str) -> dict[str, Any]:
    with server.client() as client:
        session = client.get(f"/v1/sessions/{session_id}", headers=ALICE).json()
        message: dict[str, Any] = client.get(
            f"/v1/messages/{session['last_message_id']}", headers=ALICE
        ).json()
        return message


def test_a_reply_appears_word_by_word_while_it_is_generated(
    start_server: Any, terminals: Any, tmp_path: Path
) -> None:
    gate = tmp_path / "gate"
    server: ServerProcess = start_server(**GATED, STREAM_GATE=str(gate))
    chat = terminals(server.base_url)
    chat.say("one two three")
    session_id = chat.expect_match(r"new session (\S+)\]").group(1)
    chat.expect("Echo: ")
    # The first word is on the screen while the turn is held before the rest of the reply exists.
    assert _last_message(server, session_id)["status"] == "running"
    assert "three" not in chat.child.buffer
    gate.touch()
    chat.expect("one two three\r\n")
    chat.expect("> ")
    assert chat.screen.count("Echo: ") == 1
    assert _last_message(server, session_id)["reply"] == "Echo: one two three"


def test_ctrl_c_mid_reply_leaves_cleanly_and_the_turn_goes_on(
    start_server: Any, terminals: Any, tmp_path: Path
) -> None:
    gate = tmp_path / "gate"
    server: ServerProcess = start_server(**GATED, STREAM_GATE=str(gate))
    chat = terminals(server.base_url)
    chat.say("one two three")
    session_id = chat.expect_match(r"new session (\S+)\]").group(1)
    chat.expect("Echo: ")
    chat.child.sendintr()
    assert chat.exit_status() == 130
    assert (
        f"[to continue this session: parley chat --session {session_id} --url {server.base_url}"
        in chat.screen
    )
    assert "Traceback" not in chat.screen
    gate.touch()
    wait_until(lambda: _last_message(server, session_id)["status"] == "completed", what="the turn to end")
    assert _last_message(server, session_id)["reply"] == "Echo: one two three"


def test_a_cut_stream_is_picked_up_after_its_last_event(
    start_server: Any, terminals: Any, tmp_path: Path
) -> None:
    gate = tmp_path / "gate"
    server: ServerProcess = start_server(**GATED, STREAM_GATE=str(gate))
    proxy = CuttableProxy(server.port)
    try:
        chat = terminals(proxy.base_url)
        chat.say("one two three")
        chat.expect("Echo: ")
        proxy.cut()
        chat.expect("the connection dropped; reconnecting")
        gate.touch()
        chat.expect("one two three")
        chat.expect("> ")
    finally:
        proxy.close()
    # The client asked for what followed the last event it had; nothing was shown twice or lost.
    assert re.search(
        r"GET /v1/messages/\S+/events HTTP/1.1\r\n(.*\r\n)*?last-event-id: \d+\r\n", proxy.sent, re.I
    )
    reply = chat.screen.split("one two three\n", 1)[1]
    # The note ends the reply's line; the words go on after it.
    assert "Echo: one two three\n" in reply.replace("\n[the connection dropped; reconnecting]\n", "")
    assert reply.count("Echo:") == 1


def test_the_chat_rides_out_a_restart_of_the_server(
    start_server: Any, terminals: Any, tmp_path: Path
) -> None:
    gate = tmp_path / "gate"
    server: ServerProcess = start_server(**GATED, STREAM_GATE=str(gate))
    chat = terminals(server.base_url)
    chat.say("one two three")
    session_id = chat.expect_match(r"new session (\S+)\]").group(1)
    chat.expect("Echo: ")
    server.sigkill()
    chat.expect("[the connection dropped; reconnecting]")
    server.start()  # same port, same data: the chat keeps knocking until it answers
    gate.touch()
    chat.expect("one two three\r\n")
    chat.expect("> ")
    assert _last_message(server, session_id)["reply"] == "Echo: one two three"
    shown = chat.screen.split("one two three\n", 1)[1]
    if "restarts" in shown:
        # The turn ran in the killed process: it ran again from its start, and the chat said so.
        assert "[the reply restarts (attempt 2)]\nEcho: one two three\n" in shown
    else:
        # A worker ran it (the queue): it went on, and the chat showed the rest once.
        assert "Echo: \n[the connection dropped; reconnecting]\none two three\n" in shown
    assert "Traceback" not in chat.screen


def test_confirmations_are_answered_at_the_prompt(
    start_server: Any, terminals: Any, backend: Backend
) -> None:
    server: ServerProcess = start_server()
    chat = terminals(server.base_url)

    chat.say(ORDER.format(quantity=2))
    chat.expect("Place an order for 2 x mug ($18.00)?")
    chat.say("a", after="approve, reject or edit? [a/r/e] ")
    chat.expect("Tool results: place_order:")

    chat.say(ORDER.format(quantity=5))
    chat.expect("Place an order for 5 x mug ($45.00)?")
    chat.say("e", after="approve, reject or edit? [a/r/e] ")
    chat.expect('Arguments now: {"item": "mug", "quantity": 5}')
    chat.say("quantity=1", after="empty to go back): ")
    chat.expect("Tool results: place_order:")

    chat.say(ORDER.format(quantity=3))
    chat.expect("Place an order for 3 x mug ($27.00)?")
    chat.say("r", after="approve, reject or edit? [a/r/e] ")
    chat.say("changed my mind", after="why (optional): ")
    chat.expect("Tool results: place_order:")
    chat.say("/quit")
    assert chat.exit_status() == 0

    orders = backend.query("SELECT quantity FROM parley_orders ORDER BY created_at")
    assert [row["quantity"] for row in orders] == [2, 1]


def test_questions_of_a_graph_are_answered_at_the_prompt(start_server: Any, terminals: Any) -> None:
    server: ServerProcess = start_server(PARLEY_GRAPH="tests.graphs.parallel:graph")
    chat = terminals(server.base_url)
    chat.say("hello")
    answers = {"colour": "red", "size": "L"}
    for _ in range(2):
        asked = chat.expect_match(r"\n(colour|size)\r\n").group(1)
        chat.say(answers.pop(asked), after="your answer: ")
    chat.expect("colour=red, size=L")


def test_an_operators_review_is_waited_for_and_its_outcome_shown(start_server: Any, terminals: Any) -> None:
    server: ServerProcess = start_server(PARLEY_OPERATOR_HEADER_ENABLED="true")
    chat = terminals(server.base_url, "--poll-seconds", "0.1")
    chat.say("[[reply:Your prescription is ready.]] is it?")
    chat.expect("Your answer is being reviewed by an operator.")
    chat.expect("waiting for an operator")
    assert "Your prescription is ready." not in chat.screen.split("is it?", 1)[1]
    operator = {"X-User-Id": "olga", "X-Role": "operator"}
    with server.client() as client:
        queue = client.get("/v1/interrupts", params={"kind": "review"}, headers=operator).json()["items"]
        (review,) = queue
        answered = client.post(
            f"/v1/sessions/{review['session_id']}/resume",
            json={
                "user_id": "olga",
                "interrupt_id": review["interrupt_id"],
                "value": {"decision": "approve"},
            },
            headers=operator,
        )
        assert answered.status_code in (200, 202), answered.text
    chat.expect("Your prescription is ready.")
    chat.expect("> ")


def test_a_session_is_continued_where_it_paused(start_server: Any, terminals: Any, backend: Backend) -> None:
    server: ServerProcess = start_server()
    with server.client() as client:
        paused = client.post(
            "/v1/chat", json={"user_id": "alice", "message": ORDER.format(quantity=2)}
        ).json()
    assert paused["status"] == "interrupted"
    chat = terminals(server.base_url, "--session", paused["session_id"])
    chat.expect(f"session {paused['session_id']}: 1 messages, interrupted")
    chat.expect("Place an order for 2 x mug ($18.00)?")
    chat.say("yes", after="approve, reject or edit? [a/r/e] ")
    chat.expect("Tool results: place_order:")
    chat.expect("> ")
    chat.child.sendeof()
    assert chat.exit_status() == 0
    assert f"to continue this session: parley chat --session {paused['session_id']}" in chat.screen
    assert backend.count("parley_orders") == 1


def test_failures_are_one_line_and_the_chat_goes_on(start_server: Any, terminals: Any) -> None:
    server: ServerProcess = start_server(PARLEY_RETRY_BASE_SECONDS="0", PARLEY_MAX_MESSAGE_CHARS="100")
    chat = terminals(server.base_url)
    chat.say("[[fail]] this breaks")
    session_id = chat.expect_match(r"new session (\S+)\]").group(1)
    chat.expect("error: ")
    failed = _last_message(server, session_id)
    assert failed["status"] == "failed"
    chat.expect(f"{failed['error']['detail']}\r\n")

    chat.say("[[flaky:1]] second try")
    chat.expect("[the reply restarts (attempt 2)]")
    chat.expect("Echo: second try")

    chat.say("/session no-such-session")
    chat.expect("error: ")
    chat.expect("not found")
    chat.say("/session")
    chat.expect(f"session {session_id}]")
    chat.say("x" * 150)
    chat.expect("error: body.message")
    chat.say("still here?")
    chat.expect("Echo: still here?")
    chat.say("/new")
    chat.expect("[the next message starts a new session]")
    chat.say("afresh")
    assert chat.expect_match(r"new session (\S+)\]").group(1) != session_id
    chat.expect("Echo: afresh")
    chat.child.sendintr()
    assert chat.exit_status() == 130
    assert "Traceback" not in chat.screen


def test_an_unknown_session_or_service_is_refused_at_start(start_server: Any, terminals: Any) -> None:
    server: ServerProcess = start_server()
    chat = terminals(server.base_url, "--session", "nope")
    chat.expect("error: ")
    chat.expect("not found")
    assert chat.exit_status() == 1

    nowhere = terminals("http://127.0.0.1:9")
    nowhere.say("hello")
    nowhere.expect("error: cannot reach http://127.0.0.1:9")
    nowhere.say("/quit")
    assert nowhere.exit_status() == 0
    assert "Traceback" not in chat.screen + nowhere.screen


def test_piped_input_gets_replies_on_stdout_and_a_failing_status(start_server: Any) -> None:
    server: ServerProcess = start_server()
    done = subprocess.run(
        [sys.executable, "-m", "parley.cli", "chat", "--url", server.base_url, "--user", "alice"],
        input="hello there\n[[fail]] no\nbye\n",
        capture_output=True,
        text=True,
        env=parley_env(),
        timeout=60,
    )
    assert done.stdout == "Echo: hello there\nEcho: bye\n"
    assert "error: " in done.stderr
    assert "> " not in done.stdout + done.stderr
    assert done.returncode == 1
    with httpx.Client(base_url=server.base_url) as client:
        session_id = re.search(r"new session (\S+)\]", done.stderr)
        assert session_id is not None
        transcript = client.get(f"/v1/sessions/{session_id[1]}/messages", headers=ALICE).json()["items"]
    assert [item["content"] for item in transcript if item["role"] == "user"] == [
        "hello there",
        "[[fail]] no",
        "bye",
    ]


def test_piped_chat_with_an_api_key_from_the_environment(start_server: Any, backend: Backend) -> None:
    server: ServerProcess = start_server(PARLEY_AUTH="keys")
    key = create_key(
        {**backend.env(), "PARLEY_DATA_DIR": str(backend.data_dir)}, "--role", "user", "--user", "carol"
    )
    command = [sys.executable, "-m", "parley.cli", "chat", "--url", server.base_url]
    # No --user: a user key speaks as the user it is bound to.
    done = subprocess.run(
        command,
        input="hello\n",
        capture_output=True,
        text=True,
        env=parley_env({"PARLEY_API_KEY": key}),
        timeout=60,
    )
    assert (done.returncode, done.stdout) == (0, "Echo: hello\n"), done.stderr
    session_id = re.search(r"new session (\S+)\]", done.stderr)
    assert session_id is not None
    with httpx.Client(base_url=server.base_url, headers={"Authorization": f"Bearer {key}"}) as client:
        assert client.get(f"/v1/sessions/{session_id[1]}").json()["user_id"] == "carol"
    without = subprocess.run(
        command, input="hello\n", capture_output=True, text=True, env=parley_env(), timeout=60
    )
    assert without.returncode == 1
    assert "401" in without.stderr or "API key" in without.stderr, without.stderr


def _piped_chat(server: ServerProcess, *args: str, lines: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "parley.cli", "chat", "--url", server.base_url, "--user", "alice", *args],
        input=lines,
        capture_output=True,
        text=True,
        env=parley_env(),
        timeout=60,
    )


def test_the_chat_starts_a_session_with_the_graph_it_is_told(start_server: Any) -> None:
    server: ServerProcess = start_server(
        PARLEY_GRAPHS="echo=parley.bots.assistant:build_graph,fn=tests.graphs.functional:bot"
    )
    done = _piped_chat(server, "--graph", "fn", lines="hello\nagain\n")
    assert done.returncode == 0, done.stderr
    # The functional graph's replies (it counts the turns its ``previous`` holds), not the default's echo.
    assert done.stdout == "turn 1: hello\nturn 2: again\n"
    unknown = _piped_chat(server, "--graph", "nope", lines="hello\n")
    assert unknown.returncode == 1
    assert "No graph 'nope' here" in unknown.stderr
    assert "Traceback" not in unknown.stderr
