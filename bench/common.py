"""Servers under test, started as real processes, and the statistics the reports use."""

from __future__ import annotations

import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]


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


class Server:
    """A server process on a free port, stopped with SIGTERM."""

    def __init__(self, args: list[str], *, env: dict[str, str], ready_path: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.args = [a.replace("{port}", str(self.port)) for a in args]
        self.env = {**os.environ, "PYTHONPATH": str(REPO), **env}
        self.ready_path = ready_path
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Server:
        self.process = subprocess.Popen(
            [sys.executable, *self.args], env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(self.process.stderr.read().decode() if self.process.stderr else "exited")
            try:
                if httpx.get(self.url + self.ready_path, timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                time.sleep(0.05)
        raise RuntimeError(f"{self.args} did not become ready")

    def __exit__(self, *exc: object) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()


def parley_server(data_dir: Path, **env: str) -> Server:
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


def baseline_server(db: Path) -> Server:
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
        env={"BASELINE_DB": str(db)},
        ready_path="/healthz",
    )
