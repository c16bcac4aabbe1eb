"""How the benchmark talks to each contender: Parley over its HTTP API, the peers through the official
``langgraph-sdk`` client (Aegra serves the same Agent Protocol). One interface, so that every workload
runs unchanged against all of them."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any, Protocol

import httpx
from langgraph.checkpoint.postgres import PostgresSaver
from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph_sdk import get_client

from bench.peers.servers import GRAPH_ID
from bench.sse_reader import STREAM

TURN_WAIT = 60
TERMINAL = {"completed", "failed", "cancelled", "interrupted", "success", "error", "timeout"}
DONE = {"completed", "success"}


class Client(Protocol):
    """A contender as the workloads see it. ``fresh`` gives another client of the same server on new
    connections (the race workload sends from many at once)."""

    async def new_session(self) -> str: ...

    async def turn(self, session: str, text: str) -> None: ...

    async def submit(self, session: str, text: str) -> str: ...

    async def join(self, session: str, handle: str) -> None: ...

    async def status(self, session: str, handle: str) -> str: ...

    async def accepted_order(self, session: str) -> list[str]: ...

    async def state_texts(self, session: str) -> list[tuple[str, str]]: ...

    def fresh(self) -> Client: ...

    async def aclose(self) -> None: ...


class ParleyClient:
    """``POST /v1/chat`` (waiting for the reply, or ``Prefer: respond-async``), the message's event
    stream to join, and the graph's state read from the checkpoint file, which the API does not serve."""

    def __init__(self, url: str, *, checkpoints: Path | str) -> None:
        self.url = url
        self.checkpoints = checkpoints
        self.http = httpx.AsyncClient(base_url=url, timeout=TURN_WAIT + 10, headers={"X-User-Id": "bench"})

    def fresh(self) -> ParleyClient:
        return ParleyClient(self.url, checkpoints=self.checkpoints)

    async def _chat(self, body: dict[str, Any], headers: dict[str, str] | None = None) -> dict[str, Any]:
        response = await self.http.post("/v1/chat", json={"user_id": "bench", **body}, headers=headers)
        if response.status_code not in (200, 202):
            raise RuntimeError(f"chat answered {response.status_code}: {response.text}")
        result: dict[str, Any] = response.json()
        return result

    async def new_session(self) -> str:
        return str((await self._chat({"message": "hello", "wait": TURN_WAIT}))["session_id"])

    async def turn(self, session: str, text: str) -> None:
        result = await self._chat({"session_id": session, "message": text, "wait": TURN_WAIT})
        if result["status"] != "completed":
            raise RuntimeError(f"turn ended {result['status']}: {result}")

    async def submit(self, session: str, text: str) -> str:
        result = await self._chat({"session_id": session, "message": text}, {"Prefer": "respond-async"})
        return str(result["message_id"])

    async def join(self, session: str, handle: str) -> None:
        async with self.http.stream("GET", f"/v1/messages/{handle}/events", headers=STREAM) as response:
            if response.status_code != 200:
                raise RuntimeError(f"events of {handle} answered {response.status_code}")
            async for line in response.aiter_lines():
                if line.strip() == "event: done":
                    return
        raise RuntimeError(f"the event stream of {handle} ended without done")

    async def status(self, session: str, handle: str) -> str:
        try:
            response = await self.http.get(f"/v1/messages/{handle}")
        except httpx.TransportError as exc:  # killed, or not listening yet
            return f"unreachable: {type(exc).__name__}"
        return (
            str(response.json()["status"]) if response.status_code == 200 else f"http {response.status_code}"
        )

    async def accepted_order(self, session: str) -> list[str]:
        response = await self.http.get(f"/v1/sessions/{session}/messages", params={"limit": 200})
        return [str(item["content"]) for item in response.json()["items"] if item["role"] == "user"]

    async def state_texts(self, session: str) -> list[tuple[str, str]]:
        config: Any = {"configurable": {"thread_id": session}}
        if isinstance(self.checkpoints, str):  # a PostgreSQL URL (scale-out)
            with PostgresSaver.from_conn_string(self.checkpoints) as saver:
                latest = saver.get_tuple(config)
        else:
            with closing(sqlite3.connect(self.checkpoints, check_same_thread=False)) as conn:
                latest = SqliteSaver(conn).get_tuple(config)
        messages = latest.checkpoint["channel_values"].get("messages", []) if latest else []
        return [(str(m.type), str(m.content)) for m in messages]

    async def aclose(self) -> None:
        await self.http.aclose()


class SdkClient:
    """LangGraph's server or Aegra through ``langgraph-sdk``: ``runs.wait`` for an inline turn,
    ``runs.create`` + ``runs.join`` for a background one. ``multitask`` is what a run on a busy thread
    does (the server's default when None: LangGraph's is ``reject``)."""

    def __init__(self, url: str, *, multitask: str | None = None) -> None:
        self.url = url
        self.multitask = multitask
        self.sdk = get_client(url=url, api_key=None, timeout=TURN_WAIT + 10)

    def fresh(self) -> SdkClient:
        return SdkClient(self.url, multitask=self.multitask)

    def _options(self) -> dict[str, Any]:
        return {} if self.multitask is None else {"multitask_strategy": self.multitask}

    @staticmethod
    def _input(text: str) -> dict[str, Any]:
        return {"messages": [{"role": "user", "content": text}]}

    async def new_session(self) -> str:
        thread = await self.sdk.threads.create()
        session = str(thread["thread_id"])
        await self.turn(session, "hello")
        return session

    async def turn(self, session: str, text: str) -> None:
        state = await self.sdk.runs.wait(session, GRAPH_ID, input=self._input(text), **self._options())
        if not isinstance(state, dict) or "__error__" in state or not state.get("messages"):
            raise RuntimeError(f"run did not complete: {state}")

    async def submit(self, session: str, text: str) -> str:
        run = await self.sdk.runs.create(session, GRAPH_ID, input=self._input(text), **self._options())
        return str(run["run_id"])

    async def join(self, session: str, handle: str) -> None:
        await self.sdk.runs.join(session, handle)

    async def status(self, session: str, handle: str) -> str:
        try:
            run = await self.sdk.runs.get(session, handle)
        except Exception as exc:  # the run is gone after a restart: report why, as the status
            return f"{type(exc).__name__}: {str(exc)[:80]}"
        return str(run["status"])

    async def accepted_order(self, session: str) -> list[str]:
        runs = await self.sdk.runs.list(session, limit=200)
        ordered = sorted(runs, key=lambda run: str(run["created_at"]))
        texts: list[str] = []
        for run in ordered:
            found: Any = run
            # LangGraph's server keeps a run's input under ``kwargs``, Aegra's at the top.
            given = found.get("input") or (found.get("kwargs") or {}).get("input") or {}
            messages = given.get("messages") or []
            texts.extend(str(m.get("content")) for m in messages if isinstance(m, dict))
        return texts

    async def state_texts(self, session: str) -> list[tuple[str, str]]:
        state = await self.sdk.threads.get_state(session)
        values = state.get("values") or {}
        messages = values.get("messages", []) if isinstance(values, dict) else []
        return [(str(m.get("type")), str(m.get("content"))) for m in messages]

    async def aclose(self) -> None:
        await self.sdk.http.client.aclose()
