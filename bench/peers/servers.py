"""The contenders' server processes, each in a process group of its own so that the crash workload can
SIGKILL all of it (``langgraph dev`` and Aegra may start child processes) and start it again on the same
storage. Every server listens on 127.0.0.1 only."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from contextlib import suppress
from pathlib import Path

import httpx
import psycopg

from bench.common import POOL_SIZE, REPO, free_port
from bench.peers.install import Peer

GRAPH_FILE = REPO / "bench" / "peers" / "graph.py"
GRAPH_ID = "chat"
# Nothing leaves the machine: no LangSmith tracing, no usage analytics of the CLIs, no license or
# version check against PyPI at start-up (langgraph-api's usage report needs a license key: none is set).
QUIET_ENV = {
    "LANGSMITH_TRACING": "false",
    "LANGCHAIN_TRACING_V2": "false",
    "LANGSMITH_API_KEY": "",
    "LANGCHAIN_API_KEY": "",
    "LANGGRAPH_CLI_NO_ANALYTICS": "1",
    "LANGGRAPH_NO_VERSION_CHECK": "1",
    "DO_NOT_TRACK": "1",
    "OTEL_SDK_DISABLED": "true",
}


class ServerProcess:
    """One contender's server: ``start`` (seconds until ready), ``kill`` (SIGKILL, the whole group),
    ``stop`` (SIGTERM, then SIGKILL). Its output goes to a log file, for the error when it fails."""

    def __init__(
        self, name: str, args: list[str], *, env: dict[str, str], cwd: Path, ready_path: str, port: int
    ) -> None:
        self.name = name
        self.args = args
        self.env = {**os.environ, **QUIET_ENV, **env}
        self.cwd = cwd
        self.ready_path = ready_path
        self.url = f"http://127.0.0.1:{port}"
        self.log_path = cwd / f"{name}.log"
        self.process: subprocess.Popen[bytes] | None = None

    def _ready(self) -> bool:
        try:
            return httpx.get(self.url + self.ready_path, timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    def log_tail(self, lines: int = 20) -> str:
        text = self.log_path.read_text(encoding="utf-8", errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.strip().splitlines()[-lines:])

    def start(self, *, within: float = 120) -> float:
        started = time.monotonic()
        self.cwd.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                self.args,
                env=self.env,
                cwd=self.cwd,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        while time.monotonic() - started < within:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited {self.process.returncode}:\n{self.log_tail()}")
            if self._ready():
                return time.monotonic() - started
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"{self.name} was not ready within {within} s:\n{self.log_tail()}")

    def _signal(self, sig: signal.Signals) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, sig)

    def kill(self) -> None:
        self._signal(signal.SIGKILL)
        if self.process is not None:
            self.process.wait()

    def stop(self) -> None:
        self._signal(signal.SIGTERM)
        if self.process is not None:
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()
        # Children that outlived their parent (a reloader's worker, say) go with the group.
        if self.process is not None:
            with suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)


def parley(
    workdir: Path, *, effects: Path, env: dict[str, str] | None = None, name: str = "parley"
) -> ServerProcess:
    """``parley serve`` with the benchmark's graph: on SQLite with the in-process runner (the embedded
    default) unless ``env`` says otherwise."""
    port = free_port()
    here = workdir / name
    return ServerProcess(
        name,
        [
            sys.executable,
            "-m",
            "parley.cli",
            "serve",
            "--port",
            str(port),
            "--data-dir",
            str(here / "data"),
            "--log-level",
            "warning",
        ],
        env={
            "PYTHONPATH": str(REPO),
            "PARLEY_MODEL": "scripted",
            "PARLEY_GRAPH": "bench.peers.graph:graph",
            "PEERS_EFFECTS_FILE": str(effects),
            **(env or {}),
        },
        cwd=here,
        ready_path="/readyz",
        port=port,
    )


def langgraph_dev(peer: Peer, workdir: Path, *, effects: Path, jobs: int) -> ServerProcess:
    """``langgraph dev`` (the in-memory server of langgraph-cli[inmem]) serving the graph by path, running
    up to ``jobs`` runs at once (its default is one: the throughput workload's concurrency would only
    queue behind it)."""
    port = free_port()
    here = workdir / "langgraph"
    here.mkdir(parents=True, exist_ok=True)
    config = {"dependencies": ["."], "graphs": {GRAPH_ID: f"{GRAPH_FILE}:graph"}, "env": {}}
    (here / "langgraph.json").write_text(json.dumps(config), encoding="utf-8")
    return ServerProcess(
        "langgraph",
        [
            str(peer.bin / "langgraph"),
            "dev",
            "--no-browser",
            "--no-reload",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--n-jobs-per-worker",
            str(jobs),
            "--config",
            str(here / "langgraph.json"),
        ],
        env={"PEERS_EFFECTS_FILE": str(effects)},
        cwd=here,
        ready_path="/ok",
        port=port,
    )


def aegra(
    peer: Peer, workdir: Path, *, effects: Path, database_url: str, redis: tuple[str, str] | None = None
) -> ServerProcess:
    """``aegra serve`` on a PostgreSQL database of its own. Without ``redis`` Aegra runs its turns as
    tasks in the server process (its default); with ``(url, key prefix)`` it queues them in Redis for
    its workers, the setting it recommends for production (it warns that without it background runs
    have no crash recovery)."""
    port = free_port()
    name = "aegra-redis" if redis else "aegra"
    here = workdir / name
    here.mkdir(parents=True, exist_ok=True)
    (here / "aegra.json").write_text(
        json.dumps({"graphs": {GRAPH_ID: f"{GRAPH_FILE}:graph"}}), encoding="utf-8"
    )
    env = {"DATABASE_URL": database_url, "PEERS_EFFECTS_FILE": str(effects), "LOG_LEVEL": "WARNING"}
    if redis is not None:
        url, prefix = redis
        env |= {
            "REDIS_BROKER_ENABLED": "true",
            "REDIS_URL": url,
            # Keys of their own on a Redis other processes use; the run deletes them at the end.
            "WORKER_QUEUE_KEY": f"{prefix}jobs",
            "REDIS_CHANNEL_PREFIX": f"{prefix}run:",
        }
    return ServerProcess(
        name,
        [
            str(peer.bin / "aegra"),
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "-c",
            str(here / "aegra.json"),
        ],
        env=env,
        cwd=here,
        ready_path="/health",
        port=port,
    )


class ParleyWorker(ServerProcess):
    """``parley worker`` on a PostgreSQL database: ready once it has registered with the job queue."""

    def __init__(self, workdir: Path, *, env: dict[str, str]) -> None:
        here = workdir / "parley-queue"
        args = [sys.executable, "-m", "parley.cli", "worker", "--log-level", "warning"]
        super().__init__("parley-worker", args, env=env, cwd=here, ready_path="", port=0)
        self.database_url = env["PARLEY_DATABASE_URL"]
        self._before = 0

    def _registered(self) -> int:
        with psycopg.connect(self.database_url, autocommit=True) as conn:
            row = conn.execute("SELECT count(*) FROM procrastinate_workers").fetchone()
        return int(row[0]) if row else 0

    def start(self, *, within: float = 120) -> float:
        self._before = self._registered()
        return super().start(within=within)

    def _ready(self) -> bool:
        return self._registered() > self._before


class Deployment:
    """Several processes started, killed and stopped as one (Parley's API instance and its worker)."""

    def __init__(self, processes: list[ServerProcess]) -> None:
        self.processes = processes
        self.name = processes[0].name
        self.url = processes[0].url

    def start(self, *, within: float = 120) -> float:
        started = time.monotonic()
        for process in self.processes:
            process.start(within=within)
        return time.monotonic() - started

    def kill(self) -> None:
        for process in self.processes:
            process.kill()

    def stop(self) -> None:
        for process in self.processes:
            process.stop()

    def log_tail(self, lines: int = 20) -> str:
        return "\n".join(p.log_tail(lines) for p in self.processes)


Served = ServerProcess | Deployment
"""A contender's processes: one server, or Parley's API instance and worker."""


def parley_queue(workdir: Path, *, effects: Path, database_url: str) -> Deployment:
    """Parley's scale-out: ``parley serve --runner queue`` and one ``parley worker`` on PostgreSQL."""
    env = {
        "PARLEY_DATABASE_URL": database_url,
        "PARLEY_RUNNER": "queue",
        "PARLEY_DATABASE_POOL_SIZE": str(POOL_SIZE),
    }
    api = parley(workdir, effects=effects, env=env, name="parley-queue")
    worker = ParleyWorker(workdir, env=api.env | env)
    return Deployment([api, worker])
