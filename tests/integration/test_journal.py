"""The event journal (``core/journal.py``) on the real store: the events of several messages published
together are stored in one call, numbered per message, then published — and, if storing them together
fails, stored message by message, none lost or repeated."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import AsyncExitStack
from typing import Any

import pytest

from parley.core.errors import StorageUnavailable
from parley.core.events import EventBus, MessageEvent
from parley.core.journal import EventJournal
from parley.core.statuses import MessageKind
from parley.settings import Settings
from parley.storage.factory import database
from parley.storage.sql_store import SqlStore
from tests.backends import Backend


class CountingStore(SqlStore):
    """The real store, counting how events are appended; ``fail_together`` times, storing several
    messages' events together fails as storage that went away would."""

    def __init__(self, store: SqlStore, *, fail_together: int = 0) -> None:
        super().__init__(store.db)
        self.calls: Counter[str] = Counter()
        self._fail_together = fail_together

    async def append_events(self, *, message_id: str, events: Sequence[tuple[str, Any]]) -> int | None:
        self.calls["one"] += 1
        return await super().append_events(message_id=message_id, events=events)

    async def append_events_of(
        self, *, events: Mapping[str, Sequence[tuple[str, Any]]]
    ) -> dict[str, int | None]:
        self.calls["together"] += 1
        if self._fail_together > 0:
            self._fail_together -= 1
            raise StorageUnavailable("Storage is temporarily unavailable; retry.")
        return await super().append_events_of(events=events)


@pytest.fixture
async def store(backend: Backend) -> AsyncIterator[SqlStore]:
    s = SqlStore(database(Settings(**backend.settings_values())))
    await s.open()
    yield s
    await s.close()


async def _messages(store: SqlStore, count: int) -> list[str]:
    return [
        (
            await store.accept_message(
                user_id="u", session_id=None, content="hi", kind=MessageKind.CHAT, reject_if_busy=False
            )
        ).message_id
        for _ in range(count)
    ]


def _token(text: str) -> tuple[str, dict[str, str]]:
    return ("token", {"text": text, "node": "agent"})


async def test_several_messages_events_are_stored_together_and_numbered_each(store: SqlStore) -> None:
    first, second = await _messages(store, 2)
    await store.append_events(message_id=first, events=[_token("a")])
    lasts = await store.append_events_of(
        events={first: [_token("b"), _token("c")], second: [_token("x")], "no-such-message": [_token("y")]}
    )
    assert lasts == {first: 3, second: 1, "no-such-message": None}
    stored = await store.read_events(message_id=first, after=0)
    assert [(e.id, e.data["text"]) for e in stored] == [(1, "a"), (2, "b"), (3, "c")]
    assert [(e.id, e.data["text"]) for e in await store.read_events(message_id=second, after=0)] == [(1, "x")]


async def _publish_and_collect(
    journal: EventJournal, bus: EventBus, ids: list[str], tokens: int
) -> dict[str, list[MessageEvent]]:
    async with AsyncExitStack() as stack:
        queues = {m: await stack.enter_async_context(bus.subscribe(m)) for m in ids}
        for i in range(tokens):
            for m in ids:  # all published before the writer runs: one batch of several messages
                journal.publish(m, "token", {"text": f"{m[:4]}-{i}", "node": "agent"})
        await journal.drain()
        return {m: [queue.get_nowait() for _ in range(queue.qsize())] for m, queue in queues.items()}


@pytest.mark.parametrize("fail_together", [0, 1])
async def test_the_journal_stores_a_batch_of_messages_in_one_call(
    store: SqlStore, fail_together: int
) -> None:
    ids = await _messages(store, 3)
    counting = CountingStore(store, fail_together=fail_together)
    bus = EventBus()
    journal = EventJournal(store=counting, bus=bus)
    await journal.start()
    try:
        received = await _publish_and_collect(journal, bus, ids, tokens=4)
    finally:
        await journal.stop()
    if fail_together:
        # Stored message by message instead, each once.
        assert counting.calls == Counter(together=1, one=3)
    else:
        assert counting.calls == Counter(together=1)
    for m in ids:
        # Published once each, in order, with the ids storage gave them.
        assert [(e.id, e.data["text"]) for e in received[m]] == [(i + 1, f"{m[:4]}-{i}") for i in range(4)]
        stored = await store.read_events(message_id=m, after=0)
        assert [(e.id, e.data["text"]) for e in stored] == [(e.id, e.data["text"]) for e in received[m]]
