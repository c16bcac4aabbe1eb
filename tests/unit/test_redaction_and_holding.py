"""The two halves of the review gate, piece by piece: redacting operator-only interrupts for end users,
and holding back the tokens of a draft that may go to review."""

from __future__ import annotations

from typing import Any
from uuid import uuid4

import pytest
from langchain_core.outputs import LLMResult

from parley.core.redaction import REVIEW_NOTICE, interrupt_for_viewer, interrupts_for_viewer
from parley.core.usage import HOLD_TAG, NOSTREAM_TAG, TurnObserver, namespace_of

REVIEW = {"id": "i1", "kind": "review", "value": {"kind": "review", "draft": "secret", "reasons": ["x"]}}
HIDDEN = {"id": "i1", "kind": "review", "value": {"kind": "review", "question": REVIEW_NOTICE}}


def test_a_review_is_hidden_from_users_and_whole_for_operators() -> None:
    assert interrupt_for_viewer(REVIEW, operator=False) == HIDDEN
    assert interrupt_for_viewer(REVIEW, operator=True) == REVIEW
    confirm = {"id": "c1", "kind": "confirm", "value": {"kind": "confirm", "question": "Buy?"}}
    assert interrupts_for_viewer([confirm, REVIEW], operator=False) == [confirm, HIDDEN]
    assert interrupts_for_viewer(None, operator=False) is None


def test_either_kind_marks_a_review() -> None:
    # A recorded kind that disagrees with the payload, either way round, still hides it.
    assert interrupt_for_viewer({**REVIEW, "kind": "input"}, operator=False) == HIDDEN
    relabelled = {"id": "i1", "kind": "review", "value": {"draft": "secret"}}
    assert interrupt_for_viewer(relabelled, operator=False) == HIDDEN


def _call(
    observer: TurnObserver, tags: list[str], words: list[str], *, fail: bool = False, ns: str = "agent:1"
) -> None:
    run_id = uuid4()
    metadata = {"langgraph_node": "agent", "langgraph_checkpoint_ns": ns}
    observer.on_chat_model_start({}, [[]], run_id=run_id, tags=tags, metadata=metadata)
    for word in words:
        observer.on_llm_new_token(word, run_id=run_id)
    if fail:
        observer.on_llm_error(TimeoutError(), run_id=run_id)
    else:
        observer.on_llm_end(LLMResult(generations=[]), run_id=run_id)


def test_held_tokens_wait_for_the_turn_and_go_if_it_does_not_complete() -> None:
    published: list[Any] = []
    observer = TurnObserver(lambda text, node: published.append((text, node)))
    _call(observer, [], ["live "])
    _call(observer, [NOSTREAM_TAG], ["summary "])
    _call(observer, [HOLD_TAG], ["broken "], fail=True)  # a failed call's tokens never count
    _call(observer, [HOLD_TAG], ["held ", "draft"], ns="refunds:9|agent:2")
    root, refunds = ("agent", ()), ("agent", ("refunds",))
    assert published == [("live ", root)]
    observer.settle(publish=True)
    # Each token says which node spoke, and inside which subgraph (agent) it ran.
    assert published == [("live ", root), ("held ", refunds), ("draft", refunds)]

    published.clear()
    observer = TurnObserver(lambda text, node: published.append((text, node)))
    _call(observer, [HOLD_TAG], ["flagged ", "draft"])
    observer.settle(publish=False)  # the turn paused for review
    observer.settle(publish=True)  # nothing is left to publish later either
    assert published == []
    assert observer.output_tokens == 2  # held or not, the tokens count in usage


@pytest.mark.parametrize(
    ("checkpoint_ns", "namespace"),
    [
        (None, ()),
        ("", ()),
        ("agent:1f0e", ()),
        ("refunds:1f0e|agent:77aa", ("refunds",)),
        ("team:1|refunds:2|agent:3", ("team", "refunds")),
    ],
)
def test_the_namespace_of_a_model_call(checkpoint_ns: str | None, namespace: tuple[str, ...]) -> None:
    assert namespace_of(checkpoint_ns) == namespace
