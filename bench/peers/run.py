"""``python -m bench peers``: Parley and its peers serving the same graph, measured in one run.

Contenders: ``parley`` (``parley serve``, SQLite, in-process runner: the embedded default),
``parley-queue`` (PostgreSQL, ``--runner queue`` and one ``parley worker``), ``langgraph`` (``langgraph
dev``), ``aegra`` (``aegra serve`` on PostgreSQL, its default in-process executor) and ``aegra-redis``
(its Redis job queue and workers). A contender that does not install or start is left out and the
report says why; Parley is the baseline every ratio is taken against.
"""

from __future__ import annotations

import asyncio
import os
import platform
import time
from collections.abc import Awaitable, Callable
from contextlib import ExitStack, suppress
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import redis

from bench.common import PostgresDatabases
from bench.peers import long_session, servers, workloads
from bench.peers.clients import Client, ParleyClient, SdkClient
from bench.peers.install import InstallError, Peer, install
from bench.peers.servers import Deployment, Served

ALL = ["parley", "parley-queue", "langgraph", "aegra", "aegra-redis"]
REDIS_URL = os.environ.get("PARLEY_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
NEEDS = {"langgraph": "langgraph", "aegra": "aegra", "aegra-redis": "aegra"}


@dataclass(frozen=True)
class Sizes:
    """How much of each workload. The defaults are the issue's; ``quick`` is for the smoke test."""

    sequential: int = 100
    sessions: int = 200
    per_session: int = 10
    concurrency: int = 16
    background: int = 30
    race: int = 20
    crash_sleep: float = 15.0
    crash_settle: float = 11.0
    long_turns: int = 2000

    @classmethod
    def quick(cls) -> Sizes:
        return cls(
            sequential=10,
            sessions=4,
            per_session=2,
            concurrency=4,
            background=3,
            race=5,
            crash_sleep=1.0,
            crash_settle=0.3,
            long_turns=12,
        )


def machine() -> dict[str, Any]:
    meminfo = Path("/proc/meminfo")
    total_kb = (
        next(
            (
                int(line.split()[1])
                for line in meminfo.read_text().splitlines()
                if line.startswith("MemTotal")
            ),
            0,
        )
        if meminfo.exists()
        else 0
    )
    return {
        "cores": os.cpu_count(),
        "memory_gb": round(total_kb / 1e6, 1),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }


def _own_versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for name in ("parley", "langgraph", "langgraph-checkpoint-sqlite", "langchain-core", "langgraph-sdk"):
        with suppress(metadata.PackageNotFoundError):
            found[name] = metadata.version(name)
    return found


class Run:
    """The contenders of one run: installed, started, and their clients; what could not run, and why."""

    def __init__(self, workdir: Path, names: list[str], *, sizes: Sizes, stack: ExitStack) -> None:
        self.workdir = workdir
        self.sizes = sizes
        self.effects = workdir / "effects.log"
        self.stack = stack
        self.not_run: dict[str, str] = {}
        self.versions: dict[str, dict[str, str]] = {"parley": _own_versions()}
        self.servers: dict[str, Served] = {}
        self.clients: dict[str, Client] = {}
        self.redis_prefix = f"parley-bench-{os.getpid()}:"
        peers: dict[str, Peer] = {}
        for peer in sorted({NEEDS[n] for n in names if n in NEEDS}):
            print(f"== peers: installing {peer} into bench/.peers/{peer}", flush=True)
            try:
                peers[peer] = install(peer, log=workdir / f"install-{peer}.log")
                self.versions[peer] = peers[peer].versions
            except InstallError as exc:
                for name in names:
                    if NEEDS.get(name) == peer:
                        self.not_run[name] = f"install failed: {exc}"
        self._databases: PostgresDatabases | None = None
        for name in names:
            if name in self.not_run:
                continue
            try:
                server = self._server(name, peers)
                # Stopped at the end even if it fails half-way (an API instance up, its worker not).
                stack.callback(server.stop)
                print(f"== peers: starting {name}", flush=True)
                server.start()
            except Exception as exc:  # any reason it did not start goes into the report, verbatim
                self.not_run[name] = f"did not start: {type(exc).__name__}: {exc}"
                continue
            self.servers[name] = server
            self.clients[name] = self._client(name, server)

    def _postgres(self) -> PostgresDatabases:
        if self._databases is None:
            self._databases = self.stack.enter_context(PostgresDatabases())
        return self._databases

    def _redis(self) -> tuple[str, str]:
        def cleanup() -> None:
            client: redis.Redis = redis.Redis.from_url(REDIS_URL)
            keys = list(client.scan_iter(match=self.redis_prefix + "*"))
            if keys:
                client.delete(*keys)
            client.close()

        redis.Redis.from_url(REDIS_URL).ping()
        self.stack.callback(cleanup)
        return REDIS_URL, self.redis_prefix

    def _server(self, name: str, peers: dict[str, Peer]) -> Served:
        if name == "parley":
            return servers.parley(self.workdir, effects=self.effects)
        if name == "parley-queue":
            url = self._postgres().create("peers_parley")
            return servers.parley_queue(self.workdir, effects=self.effects, database_url=url)
        if name == "langgraph":
            return servers.langgraph_dev(
                peers["langgraph"], self.workdir, effects=self.effects, jobs=self.sizes.concurrency
            )
        if name in ("aegra", "aegra-redis"):
            url = self._postgres().create_empty(name.replace("-", "_"))
            redis_at = self._redis() if name == "aegra-redis" else None
            return servers.aegra(
                peers["aegra"], self.workdir, effects=self.effects, database_url=url, redis=redis_at
            )
        raise ValueError(f"unknown contender {name!r}")

    def _client(self, name: str, server: Served) -> Client:
        if name == "parley":
            return ParleyClient(
                server.url, checkpoints=self.workdir / "parley" / "data" / "parley-checkpoints.sqlite"
            )
        if name == "parley-queue":
            assert isinstance(server, Deployment)
            return ParleyClient(server.url, checkpoints=server.processes[1].env["PARLEY_DATABASE_URL"])
        return SdkClient(server.url)


async def _measure(run: Run, sizes: Sizes) -> dict[str, Any]:
    clients = run.clients
    figures: dict[str, Any] = {}
    stages: list[tuple[str, Callable[[], Awaitable[dict[str, Any]]]]] = [
        ("sequential", lambda: workloads.sequential(clients, turns=sizes.sequential)),
        (
            "throughput",
            lambda: workloads.throughput(
                clients, sessions=sizes.sessions, per_session=sizes.per_session, concurrency=sizes.concurrency
            ),
        ),
        ("background", lambda: workloads.background(clients, turns=sizes.background)),
        ("race", lambda: workloads.race(clients, messages=sizes.race)),
    ]
    for key, stage in stages:
        started = time.monotonic()
        print(f"== peers: {key}", flush=True)
        figures[key] = await stage()
        figures[key]["seconds"] = round(time.monotonic() - started, 1)
    # The peers' default for a run on a busy thread is to refuse it; the race again, with each one
    # asked to queue it (multitask_strategy="enqueue"), Parley's default.
    enqueue: dict[str, Client] = {
        name: SdkClient(c.url, multitask="enqueue") for name, c in clients.items() if isinstance(c, SdkClient)
    }
    if enqueue:
        print("== peers: race (enqueue)", flush=True)
        figures["race_enqueue"] = await workloads.race(enqueue, messages=sizes.race)
        for queued in enqueue.values():
            await queued.aclose()
    figures["crash"] = {}
    for name, client in clients.items():
        print(f"== peers: crash of {name}", flush=True)
        server = run.servers[name]
        try:
            figures["crash"][name] = await workloads.crash(
                name, client, server, effects=run.effects, sleep=sizes.crash_sleep, settle=sizes.crash_settle
            )
        except Exception as exc:  # one contender's failure to come back is a result, not the end of the run
            figures["crash"][name] = {
                "completed": False,
                "error": f"{type(exc).__name__}: {exc}",
                "log": server.log_tail(5),
            }
    for client in clients.values():
        await client.aclose()
    return figures


def run(workdir: Path, *, names: list[str] | None = None, sizes: Sizes | None = None) -> dict[str, Any]:
    """Every workload on every contender that installs and starts, then the long session (Parley only)."""
    sizes = sizes or Sizes()
    names = names or ALL
    started = time.monotonic()
    report: dict[str, Any] = {"sizes": asdict(sizes), "machine": machine(), "baseline": "parley"}
    with ExitStack() as stack:
        contenders = Run(workdir, names, sizes=sizes, stack=stack)
        if "parley" not in contenders.clients:
            raise RuntimeError(f"Parley, the baseline, did not start: {contenders.not_run.get('parley')}")
        report["contenders"] = list(contenders.clients)
        report["not_run"] = contenders.not_run
        report["versions"] = contenders.versions
        report["workloads"] = asyncio.run(_measure(contenders, sizes))
    print("== peers: long session", flush=True)
    report["long_session"] = long_session.run(workdir, turns=sizes.long_turns)
    report["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    report["seconds"] = round(time.monotonic() - started, 1)
    return report
