"""Sessions out of one instance and into another: the session document (``document.py``), written by
``exporter.py`` and checked and written by ``importer.py``; ``SqlTransfer`` is the ``SessionTransfer``
port over them."""

from __future__ import annotations

from collections.abc import AsyncIterator
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

    def __init__(self, *, db: Database, saver: BaseCheckpointSaver[Any], graph: str) -> None:
        self._db = db
        self._saver = saver
        self._graph = graph
        self._locks = importer.ImportLocks()

    async def open_export(self, *, session_id: str, user_id: str, operator: bool) -> AsyncIterator[bytes]:
        """See ``SessionTransfer.open_export``."""
        return await exporter.open_export(
            db=self._db,
            saver=self._saver,
            graph=self._graph,
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
                graph=self._graph,
                source=source,
                replace=replace,
                locks=self._locks,
            )
        except DocumentError as exc:
            raise InvalidInput(
                f"The session document is refused: {exc.detail}.", loc=["body", *exc.loc]
            ) from None
        return ImportedSession(session_id=done.session_id, user_id=done.user_id, counts=done.counts)
