"""Sessions out of one instance and into another: the session document (``document.py``), written by
``exporter.py`` and checked and written by ``importer.py``; ``SqlTransfer`` is the ``SessionTransfer``
port over them."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

from langgraph.checkpoint.base import BaseCheckpointSaver

from parley.core.errors import InvalidInput
from parley.core.records import ImportedSession
from parley.storage.db import Database
from parley.storage.transfer import exporter, importer
from parley.storage.transfer.document import DocumentError


class SqlTransfer:
    """Export and import of sessions over Parley's database and LangGraph's saver."""

    def __init__(
        self, *, db: Database, saver: BaseCheckpointSaver[Any], graphs: Sequence[tuple[str, str]]
    ) -> None:
        """``graphs``: the ``(name, reference)`` of each graph served, the default first. A document names
        its session's graph; one may be imported only where that graph is served. Documents made before
        graphs had names carry the reference instead, which is accepted for the graph loaded from it."""
        self._db = db
        self._saver = saver
        self._default_graph = graphs[0][0]
        self._served = {name: name for name, _ in graphs} | {reference: name for name, reference in graphs}
        self._locks = importer.ImportLocks()

    async def open_export(self, *, session_id: str, user_id: str, operator: bool) -> AsyncIterator[bytes]:
        """See ``SessionTransfer.open_export``."""
        return await exporter.open_export(
            db=self._db,
            saver=self._saver,
            default_graph=self._default_graph,
            session_id=session_id,
            user_id=user_id,
            operator=operator,
        )

    async def import_document(self, *, source: Path, replace: bool) -> ImportedSession:
        """See ``SessionTransfer.import_document``."""
        try:
            done = await importer.import_document(
                db=self._db,
                saver=self._saver,
                served=self._served,
                source=source,
                replace=replace,
                locks=self._locks,
            )
        except DocumentError as exc:
            raise InvalidInput(
                f"The session document is refused: {exc.detail}.", loc=["body", *exc.loc]
            ) from None
        return ImportedSession(session_id=done.session_id, user_id=done.user_id, counts=done.counts)
