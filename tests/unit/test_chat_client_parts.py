"""The pieces of ``parley chat`` that need no server: reading events and errors, asking for answers, and
what goes to which stream. (The chat against a real server: tests/e2e/test_chat_cli.py.)"""

from __future__ import annotations

import gc
import io
import signal
import sys
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from httpx_sse import ServerSentEvent

from parley.cli_chat.answers import Answer, ask_answer, parse_edited_args, question_of
from parley.cli_chat.client import ApiError
from parley.cli_chat.console import Console
from parley.cli_chat.ctrl_c import CtrlC
from parley.cli_chat.events import TurnEvent


class Typist:
    """A person who types the given lines, one per question, and reads what is said."""

    def __init__(self, *lines: str) -> None:
        self.lines = list(lines)
        self.prompts: list[str] = []
        self.said: list[str] = []

    def read(self, prompt: str) -> str | None:
        self.prompts.append(prompt)
        return self.lines.pop(0) if self.lines else None

    def say(self, text: str) -> None:
        self.said.append(text)


CONFIRM = {
    "id": "i1",
    "kind": "confirm",
    "value": {
        "action": "place_order",
        "args": {"item": "mug", "quantity": 2},
        "question": "Place an order for 2 x mug ($18.00)?",
    },
}


@pytest.mark.parametrize(
    ("typed", "value"),
    [
        (["a"], {"decision": "approve"}),
        (["yes"], {"decision": "approve"}),
        (["r", ""], {"decision": "reject"}),
        (["no", "too dear"], {"decision": "reject", "reason": "too dear"}),
        (["e", "quantity=1"], {"decision": "edit", "args": {"quantity": 1}}),
        (["edit", '{"item": "t-shirt"}'], {"decision": "edit", "args": {"item": "t-shirt"}}),
        (["maybe", "e", "nonsense", "", "a"], {"decision": "approve"}),
    ],
)
def test_a_confirmation_becomes_the_value_the_assistant_reads(typed: list[str], value: Any) -> None:
    typist = Typist(*typed)
    assert ask_answer(CONFIRM, typist) == Answer(value)
    assert typist.said[0] == "Place an order for 2 x mug ($18.00)?"


def test_an_edit_shows_the_arguments_and_explains_a_bad_change() -> None:
    typist = Typist("e", "quantity", "quantity=3 note='gift wrap'")
    answer = ask_answer(CONFIRM, typist)
    assert answer == Answer({"decision": "edit", "args": {"quantity": 3, "note": "gift wrap"}})
    assert 'Arguments now: {"item": "mug", "quantity": 2}' in typist.said
    assert any(line.startswith("Not understood") for line in typist.said)


@pytest.mark.parametrize("typed", [[], ["/quit"], ["r"], ["e", "", "/exit"]])
def test_leaving_instead_of_answering_gives_no_answer(typed: list[str]) -> None:
    assert ask_answer(CONFIRM, Typist(*typed)) is None


def test_a_question_is_answered_with_the_text_typed_and_a_breakpoint_goes_on() -> None:
    question = {"id": "q", "kind": "input", "value": {"kind": "input", "question": "colour"}}
    typist = Typist("", "dark red")
    assert ask_answer(question, typist) == Answer("dark red")
    assert typist.said == ["colour"]
    assert ask_answer({"id": "b", "kind": "breakpoint", "value": {"node": "tools"}}, Typist("")) == Answer(
        None
    )


def test_a_repeated_question_says_why() -> None:
    again = {**CONFIRM, "value": {**CONFIRM["value"], "error": "Answer with approve or reject."}}
    typist = Typist("a")
    ask_answer(again, typist)
    assert typist.said[0] == "(the previous answer was not understood: Answer with approve or reject.)"


@pytest.mark.parametrize(
    ("text", "args"),
    [
        ('{"quantity": 1}', {"quantity": 1}),
        ("quantity=1 item=mug", {"quantity": 1, "item": "mug"}),
        ('amount=12.5 order_id="ord_1"', {"amount": 12.5, "order_id": "ord_1"}),
        ("[1]", None),
        ("{broken", None),
        ("quantity", None),
        ("=1", None),
        ("a='unclosed", None),
    ],
)
def test_edited_arguments(text: str, args: dict[str, Any] | None) -> None:
    assert parse_edited_args(text) == args


def test_question_of_an_interrupt() -> None:
    assert question_of(CONFIRM) == "Place an order for 2 x mug ($18.00)?"
    assert question_of({"value": "plain"}) == "plain"
    assert question_of({"value": {"n": 1}}) == '{"n": 1}'


def test_events_are_read_with_their_ids() -> None:
    token = TurnEvent.of(ServerSentEvent(event="token", data='{"text": "Hel", "node": "agent"}', id="7"))
    assert (token.kind, token.text, token.id) == ("token", "Hel", 7)
    status = TurnEvent.of(ServerSentEvent(event="status", data='{"status": "running", "attempt": 2}', id="1"))
    assert status.attempt == 2
    odd = TurnEvent.of(ServerSentEvent(event="token", data="not json", id="x"))
    assert (odd.data, odd.id, odd.text) == ({"value": "not json"}, None, "")


def _response(status: int, body: str, content_type: str) -> httpx.Response:
    return httpx.Response(status, content=body.encode(), headers={"content-type": content_type})


def test_a_problem_is_told_by_its_detail_and_the_field_at_fault() -> None:
    validation = ApiError.from_response(
        _response(
            422,
            '{"type": "/problems/validation", "title": "Unprocessable Content", "status": 422,'
            ' "detail": "must be at most 100 characters",'
            ' "errors": [{"loc": ["body", "message"], "field": "body.message", "msg": "…", "type": "value_error"}]}',
            "application/problem+json",
        )
    )
    assert str(validation) == "body.message: must be at most 100 characters"
    assert (validation.status, validation.problem_type) == (422, "/problems/validation")
    missing = ApiError.from_response(
        _response(
            404,
            '{"type": "/problems/not-found", "title": "Not Found", "status": 404, "detail": "Session not found."}',
            "application/problem+json",
        )
    )
    assert str(missing) == "Session not found."
    plain = ApiError.from_response(_response(503, "Service Unavailable", "text/plain"))
    assert (str(plain), plain.status) == ("Service Unavailable", 503)
    empty = ApiError.from_response(_response(502, "", "text/plain"))
    assert str(empty) == "HTTP 502 Bad Gateway"


def test_piped_input_has_no_prompts_and_only_replies_on_stdout() -> None:
    out, err = io.StringIO(), io.StringIO()
    console = Console(stdin=io.StringIO("hello\r\nbye\n"), stdout=out, stderr=err)
    assert not console.interactive
    assert console.read("> ") == "hello"
    console.write_reply("Echo: ")
    console.write_reply("hello")
    console.note("new session s1")
    console.error("it broke")
    assert console.read("> ") == "bye"
    assert console.read("> ") is None
    assert out.getvalue() == "Echo: hello\n"
    assert err.getvalue() == "[new session s1]\nerror: it broke\n"


@pytest.mark.parametrize(
    ("argv", "complaint"),
    [
        (["--url", "localhost:8000"], "give the service's http:// or https:// address"),
        (["--user", "zoë"], "printable ASCII"),
        (["--user", "a b"], "printable ASCII"),
        (["--poll-seconds", "0"], "--poll-seconds must be positive"),
    ],
)
def test_parley_chat_refuses_options_it_cannot_use(
    argv: list[str], complaint: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from parley.cli import main

    assert main(["chat", *argv]) == 2
    assert complaint in capsys.readouterr().err


def test_a_ctrl_c_swallowed_by_a_finalizer_still_leaves_at_the_next_prompt(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Ctrl-C landing while a freed generator is being closed (as httpx's stream readers are) is dropped
    by the interpreter; the chat must still leave instead of prompting again."""
    reported: list[type[BaseException] | None] = []
    monkeypatch.setattr(sys, "__unraisablehook__", lambda report: reported.append(report.exc_type))

    def reader() -> Iterator[str]:
        try:
            yield "event"
        finally:
            signal.raise_signal(signal.SIGINT)  # the press arrives during the generator's cleanup

    console = Console(stdin=io.StringIO("next line\n"), stdout=io.StringIO(), stderr=io.StringIO())
    with console.ctrl_c.installed():
        events = reader()
        next(events)
        del events  # freed while suspended: closed by its finalizer, where the interrupt is dropped
        assert console.ctrl_c.pressed
        assert reported == []  # and not reported: the press is not lost, only late
        with pytest.raises(KeyboardInterrupt):
            console.read("> ")
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def _abandoned_generator_raising(exc: BaseException) -> None:
    """A started generator that raises ``exc`` when it is closed as it is freed (as httpx's readers do when
    Ctrl-C lands in their clean-up): Python reports it as unraisable."""

    def reader() -> Iterator[int]:
        try:
            yield 1
        finally:
            raise exc

    started = reader()
    next(started)
    del started
    gc.collect()


def test_a_ctrl_c_swallowed_by_a_finalizer_prints_no_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    ctrl_c = CtrlC()
    with ctrl_c.installed():
        ctrl_c.pressed = True  # the press the finalizer swallowed: raised again before the next prompt
        _abandoned_generator_raising(KeyboardInterrupt())
        with pytest.raises(KeyboardInterrupt):
            ctrl_c.raise_if_pressed()
        # Anything else a finalizer raises is reported as Python would.
        _abandoned_generator_raising(RuntimeError("a real bug"))
    err = capsys.readouterr().err
    assert "KeyboardInterrupt" not in err
    assert "RuntimeError: a real bug" in err
