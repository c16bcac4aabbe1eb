"""Reading a session document incrementally: its top-level members, and the items of its lists one at a
time (ijson), so a document of any size is read holding one item — one checkpoint at most."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any

import ijson

from parley.storage.transfer.document import DocumentError


@dataclass(frozen=True, slots=True)
class Member:
    """A top-level member whose value is not a list."""

    key: str
    value: Any


@dataclass(frozen=True, slots=True)
class Start:
    """A top-level list begins."""

    key: str


@dataclass(frozen=True, slots=True)
class Item:
    """One item of the top-level list ``key``."""

    key: str
    index: int
    value: Any


@dataclass(frozen=True, slots=True)
class End:
    """A top-level list ends."""

    key: str


Part = Member | Start | Item | End

_OPENING = {"start_map": "end_map", "start_array": "end_array"}


def _build(event: str, value: Any, events: Iterator[tuple[str, str, Any]]) -> Any:
    """The value whose first event is ``(event, value)``, reading the rest of it from ``events``."""
    if event not in _OPENING:
        return value
    builder = ijson.ObjectBuilder()
    builder.event(event, value)
    depth = 1
    while depth:
        _, event, value = next(events)
        builder.event(event, value)
        if event in _OPENING:
            depth += 1
        elif event in ("end_map", "end_array"):
            depth -= 1
    return builder.value


def parts(stream: IO[bytes]) -> Iterator[Part]:
    """The document's parts in order. ``DocumentError`` (with the path reached) if it is not one JSON
    object: not JSON, not UTF-8, truncated, or followed by anything but whitespace."""
    where: list[str | int] = []
    events: Iterator[tuple[str, str, Any]] = iter(ijson.parse(stream, use_float=True))
    try:
        first = next(events, None)
        if first is None:
            raise DocumentError("the document is empty", loc=[])
        if first[1] != "start_map":
            raise DocumentError("the document must be a JSON object", loc=[])
        for _, event, value in events:
            if event == "end_map":
                break
            key = str(value)
            where = [key]
            _, event, value = next(events)
            if event != "start_array":
                yield Member(key, _build(event, value, events))
                continue
            yield Start(key)
            index = 0
            while True:
                where = [key, index]
                _, event, value = next(events)
                if event == "end_array":
                    break
                yield Item(key, index, _build(event, value, events))
                index += 1
            where = [key]
            yield End(key)
        else:
            raise StopIteration
        where = []
        if next(events, None) is not None:
            raise DocumentError("the document goes on after its closing brace", loc=[])
    except StopIteration:
        raise DocumentError("the document is truncated", loc=where) from None
    except ijson.IncompleteJSONError as exc:
        raise DocumentError(
            f"the document is not valid JSON or is truncated: {_short(exc)}", loc=where
        ) from None
    except ijson.JSONError as exc:
        raise DocumentError(f"the document is not valid JSON: {_short(exc)}", loc=where) from None
    except UnicodeDecodeError:
        raise DocumentError("the document is not UTF-8", loc=where) from None


def _short(exc: Exception) -> str:
    """The parser's complaint on one line, cut short (it can quote the input)."""
    text = " ".join(str(exc).split())
    return text if len(text) <= 120 else text[:117] + "..."
