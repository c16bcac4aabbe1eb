"""The process's heap, once it has started: what was built to start is moved out of the garbage
collector's way.

A started Parley process holds well over 100,000 objects that live as long as it does (the modules of
LangChain, LangGraph, pydantic and FastAPI, the compiled graph, the app). CPython's full collections
walk every one of them each time: measured, 100-160 ms of CPU during which the event loop — every turn
and every event stream of the process — stands still, every few seconds under load (bench/README.md,
``streams``). ``gc.freeze()`` moves what exists at that moment to a generation the collector never
scans; objects made later are collected as before.
"""

from __future__ import annotations

import gc


def freeze_startup_heap() -> int:
    """Collect once, then exempt every object alive now from later collections; how many there are."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()
