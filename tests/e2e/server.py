"""Start ``parley serve`` (and, for the job queue, ``parley worker``) as real subprocesses on free ports,
and wait until they are ready."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import IO, Any

import httpx

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def parley_env(env: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a Parley subprocess: this one's, the scripted model, the repository importable
    (its graphs live in ``tests/graphs``), and ``env`` on top."""
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO / "src"), str(REPO)]),
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
        "PARLEY_MODEL": "scripted",
        **(env or {}),
    }


def keys_create(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """The real ``parley keys create`` (``args``: its options) run on the data ``env`` names
    (``PARLEY_DATA_DIR``, ``PARLEY_DATABASE_URL``), whatever its outcome."""
    return subprocess.run(
        [sys.executable, "-m", "parley.cli", "keys", "create", *args],
        capture_output=True,
        text=True,
        env=parley_env(env),
        timeout=120,
        check=False,
    )


def create_key(env: dict[str, str], *args: str) -> str:
    """A key made with ``keys_create``: its last line, as a script would take it."""
    made = keys_create(env, *args)
    assert made.returncode == 0, made.stderr
    return made.stdout.strip().splitlines()[-1]


class ServerProcess:
    """One ``parley serve`` process (or, with ``command``, another long-running ``parley`` command such
    as ``worker``); its log is kept in a file for failure messages."""

    def __init__(
        self,
        data_dir: Path,
        *,
        env: dict[str, str] | None = None,
        command: list[str] | None = None,
        ready_line: str | None = None,
    ) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        name = "server" if command is None else command[0]
        data_dir.parent.mkdir(parents=True, exist_ok=True)
        self.log_path = data_dir.parent / f"{name}-{self.port}.log"
        self.env = parley_env(env)
        self.command = command or ["serve", "--port", str(self.port), "--data-dir", str(self.data_dir)]
        # A process without HTTP says it is ready in its log.
        self.ready_line = ready_line
        self.process: subprocess.Popen[bytes] | None = None

    def _ready(self) -> bool:
        if self.ready_line is not None:
            return self.ready_line in self.log()
        try:
            return httpx.get(f"{self.base_url}/readyz", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    def _launch(self, log: IO[bytes]) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [sys.executable, "-m", "parley.cli", *self.command],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )

    def start(self, *, ready_within: float = 30.0) -> ServerProcess:
        with self.log_path.open("ab") as log:
            self.process = self._launch(log)
        deadline = time.monotonic() + ready_within
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.command[0]} exited with {self.process.returncode}:\n{self.log()}")
            if self._ready():
                return self
            time.sleep(0.05)
        self.kill()
        raise RuntimeError(f"{self.command[0]} not ready within {ready_within}s:\n{self.log()}")

    def restart(self) -> ServerProcess:
        """Start again on the same port and data (after a kill or a stop)."""
        self.kill()
        return self.start()

    def sigkill(self) -> None:
        """Kill the process at once, as a crash or an OOM killer would."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    @property
    def running(self) -> bool:
        """Whether the process is alive."""
        return self.process is not None and self.process.poll() is None

    def stop(self, *, timeout: float = 30.0) -> bool:
        """SIGTERM, as a deploy would; True if the server shut down cleanly.

        uvicorn re-raises the signal after its graceful shutdown, so the exit status is -SIGTERM
        either way; the lifespan's last log line is what tells a clean stop from a crash.
        """
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout=timeout)
        log = self.log()
        clean = "parley stopped" in log or "parley worker stopped" in log
        return self.process.returncode in (0, -signal.SIGTERM) and clean

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)

    def client(self, **kwargs: Any) -> httpx.Client:
        return httpx.Client(base_url=self.base_url, timeout=30, **kwargs)


def worker_process(data_dir: Path, *, env: dict[str, str] | None = None) -> ServerProcess:
    """A ``parley worker`` (not started)."""
    return ServerProcess(data_dir, env=env, command=["worker"], ready_line="parley worker ready")
