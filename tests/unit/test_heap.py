from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from parley.heap import freeze_startup_heap


class _Node:
    def __init__(self) -> None:
        self.other: _Node | None = None


@pytest.fixture
def thawed() -> Iterator[None]:
    yield
    gc.unfreeze()  # this test process goes on: let the collector see its objects again


def _cycle() -> weakref.ref[_Node]:
    a, b = _Node(), _Node()
    a.other, b.other = b, a  # only the cycle collector can free these
    return weakref.ref(a)


def test_objects_alive_at_startup_are_left_alone_and_later_ones_collected(thawed: None) -> None:
    gc.unfreeze()
    assert freeze_startup_heap() > 1000  # this process's modules and their objects
    frozen_before = gc.get_freeze_count()
    later = _cycle()
    gc.collect()
    assert later() is None  # garbage made after the freeze is still collected
    assert gc.get_freeze_count() == frozen_before  # nothing made later joins the frozen objects
