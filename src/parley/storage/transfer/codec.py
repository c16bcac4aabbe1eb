"""Checkpoints in a session document: LangGraph's own serializer (the saver's ``serde``), in JSON.

A checkpoint and each pending write's value are ``serde.dumps_typed`` → ``{"type", "data": base64}``,
exactly what the savers store, so anything the graph can checkpoint travels. Metadata is the JSON both
savers keep. ``task_path`` of a write is not carried: the savers only sort by it, and an import writes
each task's writes in their order, which is what that sort gives back.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from langgraph.checkpoint.base import CheckpointTuple
from langgraph.checkpoint.serde.base import SerializerProtocol

from parley.storage.transfer.document import DocumentError

CHECKPOINT_KEYS = frozenset(
    {"checkpoint_ns", "checkpoint_id", "parent_checkpoint_id", "checkpoint", "metadata", "writes"}
)
WRITE_KEYS = frozenset({"task_id", "channel", "value"})


def _sorted(value: Any) -> Any:
    return dict(sorted(value.items())) if isinstance(value, dict) else value


def _canonical_checkpoint(checkpoint: Mapping[str, Any]) -> dict[str, Any]:
    """The checkpoint with its own maps in key order: PostgreSQL's ``jsonb`` gives keys back in an order
    of its own, and the serialized bytes must not depend on the backend that stored them."""
    out: dict[str, Any] = {k: _sorted(v) for k, v in sorted(checkpoint.items())}
    seen = out.get("versions_seen")
    if isinstance(seen, dict):
        out["versions_seen"] = {k: _sorted(v) for k, v in seen.items()}
    return out


def _typed(serde: SerializerProtocol, value: Any) -> dict[str, str]:
    kind, data = serde.dumps_typed(value)
    return {"type": kind, "data": base64.b64encode(data).decode("ascii")}


def encode(serde: SerializerProtocol, saved: CheckpointTuple) -> dict[str, Any]:
    """A saved checkpoint, its metadata and its pending writes as one document item."""
    conf = saved.config["configurable"]
    parent = None if saved.parent_config is None else saved.parent_config["configurable"].get("checkpoint_id")
    # The savers give writes back sorted by task path, then task: by task here, in their order within a
    # task — what an imported copy (without task paths) gives back too.
    writes = sorted(saved.pending_writes or [], key=lambda w: w[0])
    return {
        "checkpoint_ns": conf.get("checkpoint_ns", ""),
        "checkpoint_id": conf["checkpoint_id"],
        "parent_checkpoint_id": parent,
        "checkpoint": _typed(serde, _canonical_checkpoint(saved.checkpoint)),
        "metadata": dict(saved.metadata),
        "writes": [
            {"task_id": task_id, "channel": channel, "value": _typed(serde, value)}
            for task_id, channel, value in writes
        ],
    }


@dataclass(frozen=True, slots=True)
class Decoded:
    """A document item, ready for the saver's ``aput`` and ``aput_writes``."""

    checkpoint_ns: str
    checkpoint_id: str
    parent_checkpoint_id: str | None
    checkpoint: dict[str, Any]
    metadata: dict[str, Any]
    writes: list[tuple[str, str, Any]]


def _str(value: Any, loc: list[str | int]) -> str:
    if not isinstance(value, str):
        raise DocumentError("must be a string", loc=loc)
    return value


def _str_or_none(value: Any, loc: list[str | int]) -> str | None:
    return None if value is None else _str(value, loc)


def _keys(value: Any, keys: frozenset[str], loc: list[str | int]) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise DocumentError("must be an object", loc=loc)
    missing, extra = sorted(keys - value.keys()), sorted(value.keys() - keys)
    if missing:
        raise DocumentError(f"lacks {', '.join(missing)}", loc=loc)
    if extra:
        raise DocumentError(f"has unknown member {extra[0]}", loc=[*loc, extra[0]])
    return value


def _untyped(serde: SerializerProtocol, value: Any, loc: list[str | int]) -> Any:
    typed = _keys(value, frozenset({"type", "data"}), loc)
    kind = _str(typed["type"], [*loc, "type"])
    data = _str(typed["data"], [*loc, "data"])
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise DocumentError("is not base64", loc=[*loc, "data"]) from None
    try:
        return serde.loads_typed((kind, raw))
    except Exception:  # the serializer raises whatever its decoder raises on bytes it cannot read
        raise DocumentError(f"does not deserialise as {kind[:40]!r}", loc=loc) from None


def decode(serde: SerializerProtocol, item: Any, loc: list[str | int]) -> Decoded:
    """A document item checked and deserialised; ``DocumentError`` at the first fault."""
    fields = _keys(item, CHECKPOINT_KEYS, loc)
    ns = _str(fields["checkpoint_ns"], [*loc, "checkpoint_ns"])
    checkpoint_id = _str(fields["checkpoint_id"], [*loc, "checkpoint_id"])
    parent = _str_or_none(fields["parent_checkpoint_id"], [*loc, "parent_checkpoint_id"])
    if not checkpoint_id:
        raise DocumentError("must not be empty", loc=[*loc, "checkpoint_id"])
    checkpoint = _untyped(serde, fields["checkpoint"], [*loc, "checkpoint"])
    if not isinstance(checkpoint, dict) or checkpoint.get("id") != checkpoint_id:
        raise DocumentError("is not the checkpoint checkpoint_id names", loc=[*loc, "checkpoint"])
    for key in ("channel_values", "channel_versions", "versions_seen"):
        if not isinstance(checkpoint.get(key), dict):
            raise DocumentError(f"has no {key} map", loc=[*loc, "checkpoint"])
    metadata = fields["metadata"]
    if not isinstance(metadata, dict):
        raise DocumentError("must be an object", loc=[*loc, "metadata"])
    if not isinstance(fields["writes"], list):
        raise DocumentError("must be a list", loc=[*loc, "writes"])
    writes: list[tuple[str, str, Any]] = []
    for index, write in enumerate(fields["writes"]):
        at: list[str | int] = [*loc, "writes", index]
        parts = _keys(write, WRITE_KEYS, at)
        task_id = _str(parts["task_id"], [*at, "task_id"])
        channel = _str(parts["channel"], [*at, "channel"])
        writes.append((task_id, channel, _untyped(serde, parts["value"], [*at, "value"])))
    return Decoded(ns, checkpoint_id, parent, checkpoint, metadata, writes)
