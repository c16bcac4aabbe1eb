from __future__ import annotations

import pytest
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage

from parley.core.errors import InvalidInput
from parley.core.programs import reply_of
from parley.core.sessions import MAX_CURSOR_POSITION, decode_cursor, encode_cursor


def test_reply_is_the_last_ai_message_after_the_users_message() -> None:
    messages = [
        HumanMessage("old", id="m0"),
        AIMessage("old answer"),
        HumanMessage("new", id="m1"),
        AIMessage("", tool_calls=[{"name": "t", "args": {}, "id": "c"}]),
        ToolMessage("r", tool_call_id="c"),
        AIMessage("new answer"),
    ]
    assert reply_of(messages, message_id="m1") == "new answer"


def test_no_reply_when_the_graph_answered_nothing_this_turn() -> None:
    messages = [HumanMessage("old", id="m0"), AIMessage("old answer"), HumanMessage("new", id="m1")]
    assert reply_of(messages, message_id="m1") is None


def test_content_blocks_are_joined_as_text() -> None:
    messages = [
        HumanMessage("q", id="m"),
        AIMessage([{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]),
    ]
    assert reply_of(messages, message_id="m") == "ab"


@pytest.mark.parametrize("position", [0, 1, 7, 10**12, MAX_CURSOR_POSITION])
def test_cursor_round_trip(position: int) -> None:
    assert decode_cursor(encode_cursor(position)) == position


@pytest.mark.parametrize("cursor", ["", "!!!", "dDot", "eDox", "dDotMQ"])
def test_foreign_cursors_are_refused_naming_the_field(cursor: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        decode_cursor(cursor)
    assert caught.value.loc == ["query", "cursor"]


@pytest.mark.parametrize(
    "cursor",
    [str(MAX_CURSOR_POSITION + 1), str(2**63), "9" * 60, "-1", "+1", " 1", "1 ", "1_0", "\u0661", "1\n"],
)
def test_cursors_out_of_range_or_not_plain_digits_are_refused(cursor: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        decode_cursor(cursor)
    assert caught.value.loc == ["query", "cursor"]
