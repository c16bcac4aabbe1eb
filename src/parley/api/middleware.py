"""ASGI middleware: the request body size limit."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from parley.api.errors import PayloadTooLarge, problem_response


class BodySizeLimit:
    """Refuse bodies over ``max_bytes`` with 413 before any of them reaches a route.

    A declared ``Content-Length`` is checked at once; a chunked body is read up to the limit and then
    replayed to the app, so an endless body cannot exhaust memory.
    """

    def __init__(self, app: ASGIApp, *, max_bytes: int, streamed: dict[str, int] | None = None) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.streamed = streamed or {}
        """POST paths whose route reads its body as a stream and bounds it itself, with their own limit
        (a session import): only a declared length is checked here, nothing is buffered."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS", "DELETE"):
            await self.app(scope, receive, send)
            return
        streamed_limit = self.streamed.get(scope["path"]) if scope["method"] == "POST" else None
        limit = self.max_bytes if streamed_limit is None else streamed_limit
        headers = dict(scope["headers"])
        declared = headers.get(b"content-length")
        if declared is not None or streamed_limit is not None:
            try:
                too_large = declared is not None and int(declared) > limit
            except ValueError:
                too_large = False  # the server itself rejects a malformed length
            if too_large:
                await self._refuse(scope, receive, send, limit)
                return
            await self.app(scope, receive, send)
            return

        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body = message.get("body", b"")
            size += len(body)
            if size > self.max_bytes:
                await self._refuse(scope, receive, send, self.max_bytes)
                return
            chunks.append(body)
            if not message.get("more_body", False):
                break
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        error = PayloadTooLarge(f"The request body is larger than {limit} bytes.")
        response = problem_response(
            status=error.status, title=error.title, slug=error.type_slug, detail=error.detail
        )
        await response(scope, receive, send)
