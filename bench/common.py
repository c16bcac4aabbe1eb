"""Servers under test, started as real processes; the PostgreSQL databases they use; the statistics the
reports use."""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import psycopg
from psycopg import sql

REPO = Path(__file__).resolve().parents[1]
# The PostgreSQL server the scale-out benchmarks use; a database of it to connect to while creating theirs.
ADMIN_DATABASE_URL = os.environ.get("PARLEY_BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
# Connections per pool, per process, for every PostgreSQL contender (the minimal endpoint included). A
# Parley process opens up to three pools (its tables, the checkpoints, the job queue) and grows each to
# its limit under load; at Parley's default of 10 the deployments one benchmark runs at once would need
# about 70 connections, and this server's limit (100) is shared with whatever else runs here.
POOL_SIZE = 5


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


class Process:
    """A process of the system under test, ready when ``ready()`` says so, stopped with SIGTERM."""

    def __init__(self, args: list[str], *, env: dict[str, str]) -> None:
        self.args = args
        self.env = {**os.environ, "PYTHONPATH": str(REPO), **env}
        self.process: subprocess.Popen[bytes] | None = None
        self.log: Any = None

    def ready(self) -> bool:
        raise NotImplementedError

    def __enter__(self) -> Process:
        # A file, not a pipe: a pipe nobody reads would stop the process once its buffer filled up.
        self.log = tempfile.TemporaryFile()
        self.process = subprocess.Popen(
            [sys.executable, *self.args], env=self.env, stdout=subprocess.DEVNULL, stderr=self.log
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self.log.seek(0)
                raise RuntimeError(f"{self.args} exited:\n{self.log.read().decode()}")
            if self.ready():
                return self
            time.sleep(0.05)
        self.__exit__()
        raise RuntimeError(f"{self.args} did not become ready")

    def __exit__(self, *exc: object) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
        if self.log is not None:
            self.log.close()


class Server(Process):
    """A server process on a free port, ready when ``ready_path`` answers 200."""

    def __init__(self, args: list[str], *, env: dict[str, str], ready_path: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        super().__init__([a.replace("{port}", str(self.port)) for a in args], env=env)
        self.ready_path = ready_path

    def ready(self) -> bool:
        try:
            return httpx.get(self.url + self.ready_path, timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    def __enter__(self) -> Server:
        super().__enter__()
        return self


class Worker(Process):
    """``parley worker`` on a PostgreSQL database, ready once it has registered with the job queue."""

    def __init__(self, database_url: str, **env: str) -> None:
        super().__init__(
            ["-m", "parley.cli", "worker", "--log-level", "warning"],
            env={
                "PARLEY_MODEL": "scripted",
                "PARLEY_DATABASE_URL": database_url,
                "PARLEY_DATABASE_POOL_SIZE": str(POOL_SIZE),
                **env,
            },
        )
        self.database_url = database_url
        self._registered_before = self._registered()

    def _registered(self) -> int:
        with psycopg.connect(self.database_url, autocommit=True) as conn:
            row = conn.execute("SELECT count(*) FROM procrastinate_workers").fetchone()
        return int(row[0]) if row else 0

    def ready(self) -> bool:
        # procrastinate registers a worker just before it starts listening: the warm-up turns every
        # benchmark sends cover the few milliseconds in between.
        return self._registered() > self._registered_before


def parley_server(data_dir: Path, **env: str) -> Server:
    """``parley serve`` with the scripted model; ``env`` picks storage and runner (``PARLEY_*``)."""
    return Server(
        [
            "-m",
            "parley.cli",
            "serve",
            "--port",
            "{port}",
            "--data-dir",
            str(data_dir),
            "--log-level",
            "warning",
        ],
        env={"PARLEY_MODEL": "scripted", **env},
        ready_path="/readyz",
    )


@contextmanager
def parley_deployment(
    data_dir: Path,
    *,
    database_url: str | None = None,
    runner: str = "inprocess",
    workers: int = 0,
    env: dict[str, str] | None = None,
) -> Iterator[Server]:
    """One ``parley serve`` on SQLite under ``data_dir`` or on ``database_url``; with ``runner="queue"``,
    plus ``workers`` worker processes. ``env`` (``PARLEY_*``) goes to every process of it. Yields the API
    server."""
    env = {**(env or {}), "PARLEY_RUNNER": runner}
    if database_url is not None:
        env["PARLEY_DATABASE_URL"] = database_url
        env["PARLEY_DATABASE_POOL_SIZE"] = str(POOL_SIZE)
    with ExitStack() as stack:
        server = stack.enter_context(parley_server(data_dir, **env))
        for _ in range(workers):
            stack.enter_context(Worker(database_url or "", **env))
        yield server


def baseline_server(db: Path | str) -> Server:
    """The minimal endpoint (bench/baseline_app.py) on a SQLite file, or on a PostgreSQL URL."""
    env = {"BASELINE_DATABASE_URL": db} if isinstance(db, str) else {"BASELINE_DB": str(db)}
    env["BASELINE_POOL_SIZE"] = str(POOL_SIZE)
    return Server(
        [
            "-m",
            "uvicorn",
            "bench.baseline_app:create_app",
            "--factory",
            "--port",
            "{port}",
            "--log-level",
            "warning",
        ],
        env=env,
        ready_path="/healthz",
    )


def baseline_sse_server() -> Server:
    """The bare sse-starlette app (bench/baseline_sse_app.py) that event streams are compared with."""
    return Server(
        [
            "-m",
            "uvicorn",
            "bench.baseline_sse_app:create_app",
            "--factory",
            "--port",
            "{port}",
            "--log-level",
            "warning",
        ],
        env={},
        ready_path="/healthz",
    )


def loopback(url: str) -> str:
    """``url``, if it names this machine; else ``ValueError`` (benchmarks send traffic nowhere else)."""
    host = urlsplit(url).hostname
    if host not in ("127.0.0.1", "localhost", "::1"):
        raise ValueError(f"benchmarks talk to 127.0.0.1 only, not {host!r} ({url})")
    return url


class PostgresDatabases:
    """The databases of one benchmark run (``parley_bench_<pid>_<name>``): a template migrated once with
    ``parley migrate``, a clone of it per deployment, all dropped when the block ends."""

    def __init__(self, admin_url: str = ADMIN_DATABASE_URL) -> None:
        self._admin_url = loopback(admin_url)
        self._prefix = f"parley_bench_{os.getpid()}"
        self._template: str | None = None
        self._made = itertools.count(1)

    def url(self, name: str) -> str:
        base, _, _ = self._admin_url.rpartition("/")
        return f"{base}/{name}"

    def _admin(self, statement: sql.Composable) -> None:
        with psycopg.connect(self._admin_url, autocommit=True) as conn:
            conn.execute(statement)

    def __enter__(self) -> PostgresDatabases:
        return self

    def __exit__(self, *exc: object) -> None:
        with psycopg.connect(self._admin_url, autocommit=True) as conn:
            names = [
                str(r[0])
                for r in conn.execute(
                    "SELECT datname FROM pg_database WHERE datname LIKE %s", (self._prefix + "\\_%",)
                )
            ]
            for name in names:
                conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))

    def create(self, name: str) -> str:
        """A fresh database with Parley's schema (and LangGraph's and procrastinate's); its URL."""
        if self._template is None:
            template = f"{self._prefix}_template"
            self._admin(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(template)))
            subprocess.run(
                [sys.executable, "-m", "parley.cli", "migrate", "--log-level", "warning"],
                env={**os.environ, "PYTHONPATH": str(REPO), "PARLEY_DATABASE_URL": self.url(template)},
                check=True,
                stdout=subprocess.DEVNULL,
            )
            self._template = template
        full = f"{self._prefix}_{next(self._made)}_{name}"
        self._admin(
            sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                sql.Identifier(full), sql.Identifier(self._template)
            )
        )
        return self.url(full)

    def create_empty(self, name: str) -> str:
        """A fresh database with no schema (for a server that migrates its own); its URL."""
        full = f"{self._prefix}_{next(self._made)}_{name}"
        self._admin(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(full)))
        return self.url(full)

    def connections(self) -> int:
        """Connections open now to this run's databases (what a deployment of this size needs)."""
        with psycopg.connect(self._admin_url, autocommit=True) as conn:
            row = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname LIKE %s", (self._prefix + "\\_%",)
            ).fetchone()
        return int(row[0]) if row else 0


def poll(check: Callable[[], Any], *, within: float, every: float = 0.05) -> Any:
    """``check()``'s first truthy value, asked every ``every`` s; ``TimeoutError`` after ``within`` s."""
    deadline = time.monotonic() + within
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"not done within {within}s")
        time.sleep(every)


ALTERNATING_SESSIONS = 10
ALTERNATING_WARMUP = 40


async def measure_alternating(
    contenders: dict[str, tuple[str, dict[str, str]]],
    *,
    turns: int,
    baseline: str,
    first_message: dict[str, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Inline chat turns and session reads, request by request in alternation between ``contenders``
    (``name: (base URL, headers)``) over ``ALTERNATING_SESSIONS`` sessions each, after a warm-up: p50/p99
    of each, and each one's p50 against ``baseline``'s (``_adds_…_ms``, ``_…_ratio``). ``first_message``
    adds fields to a contender's session-creating messages (``{"graph": …}``)."""
    chat: dict[str, list[float]] = {name: [] for name in contenders}
    read: dict[str, list[float]] = {name: [] for name in contenders}
    async with httpx.AsyncClient(timeout=30) as client:
        sessions: dict[str, list[str]] = {name: [] for name in contenders}
        for i in range(turns + ALTERNATING_WARMUP):
            for name, (url, headers) in contenders.items():
                body: dict[str, Any] = {"user_id": "bench", "message": f"message {i}", "wait": 30}
                known = sessions[name]
                if len(known) == ALTERNATING_SESSIONS:
                    body["session_id"] = known[i % ALTERNATING_SESSIONS]
                else:
                    body.update((first_message or {}).get(name, {}))
                started = asyncio.get_running_loop().time()
                response = await client.post(f"{url}/v1/chat", json=body, headers=headers)
                took_chat = asyncio.get_running_loop().time() - started
                assert response.status_code == 200, response.text
                assert response.json()["status"] == "completed", response.text
                session_id = response.json()["session_id"]
                if len(known) < ALTERNATING_SESSIONS:
                    known.append(session_id)
                started = asyncio.get_running_loop().time()
                response = await client.get(
                    f"{url}/v1/sessions/{session_id}", headers={**headers, "X-User-Id": "bench"}
                )
                took_read = asyncio.get_running_loop().time() - started
                assert response.status_code == 200, response.text
                if i >= ALTERNATING_WARMUP:
                    chat[name].append(took_chat)
                    read[name].append(took_read)
    ms = 1000.0
    result: dict[str, Any] = {"turns": turns}
    for name in contenders:
        result[f"{name}_chat_p50_ms"] = percentile(chat[name], 50) * ms
        result[f"{name}_chat_p99_ms"] = percentile(chat[name], 99) * ms
        result[f"{name}_read_p50_ms"] = percentile(read[name], 50) * ms
        result[f"{name}_read_p99_ms"] = percentile(read[name], 99) * ms
    for name in contenders.keys() - {baseline}:
        for kind in ("chat", "read"):
            result[f"{name}_adds_{kind}_p50_ms"] = (
                result[f"{name}_{kind}_p50_ms"] - result[f"{baseline}_{kind}_p50_ms"]
            )
            result[f"{name}_{kind}_p50_ratio"] = (
                result[f"{name}_{kind}_p50_ms"] / result[f"{baseline}_{kind}_p50_ms"]
            )
    return result
