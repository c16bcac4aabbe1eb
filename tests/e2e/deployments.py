"""Parley deployments for the end-to-end tests, one per backend (``tests/backends.py``):

- ``sqlite``: the embedded mode, one ``parley serve`` on a SQLite data dir;
- ``postgres``: one ``parley serve`` (in-process runner) on a PostgreSQL database of the test's own;
- ``queue``: the scale-out mode on such a database: API instances (``--runner queue``) and ``parley
  worker`` processes, started from ``deploy/Procfile`` — the same file a deployment would use.
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import IO

from tests.backends import Backend
from tests.e2e.server import REPO, ServerProcess, parley_env

PROCFILE = REPO / "deploy" / "Procfile"


def procfile() -> dict[str, str]:
    """The process types of ``deploy/Procfile`` and their commands."""
    kinds: dict[str, str] = {}
    for line in PROCFILE.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, command = line.partition(":")
            kinds[name.strip()] = command.strip()
    return kinds


class ProcfileProcess(ServerProcess):
    """One process of a Procfile type, run as a Procfile runner would: ``sh -c`` with ``PORT`` set."""

    def __init__(self, kind: str, workdir: Path, *, env: dict[str, str]) -> None:
        is_api = kind == "api"
        super().__init__(
            workdir / "data",
            env={**env, "PORT": "0", "PARLEY_HOST": "127.0.0.1"},
            command=[kind],
            ready_line=None if is_api else "parley worker ready",
        )
        self.kind = kind
        if is_api:
            self.env["PORT"] = str(self.port)
        self.log_path = workdir / f"{kind}-{self.port}.log"

    def _launch(self, log: IO[bytes]) -> subprocess.Popen[bytes]:
        # The Procfile line as written, through the shell (it expands $PORT); `parley` is found on PATH,
        # which points at this interpreter's environment.
        command = procfile()[self.kind]
        return subprocess.Popen(
            ["/bin/sh", "-c", f"exec {command}"], env=self.env, stdout=log, stderr=subprocess.STDOUT
        )


class Deployment:
    """Parley serving one database: its API processes, its workers, and plain SQL access to its rows."""

    def __init__(
        self,
        backend: Backend,
        workdir: Path,
        *,
        env: dict[str, str] | None = None,
        apis: int = 1,
        workers: int = 1,
    ) -> None:
        self.backend = backend
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.env = {**backend.env(), "PARLEY_DATA_DIR": str(backend.data_dir), **(env or {})}
        self.apis: list[ServerProcess] = []
        self.workers: list[ServerProcess] = []
        if backend.queue:
            self._release()
            self.apis = [ProcfileProcess("api", workdir, env=self.env) for _ in range(apis)]
            self.workers = [ProcfileProcess("worker", workdir, env=self.env) for _ in range(workers)]
        else:
            self.apis = [ServerProcess(backend.data_dir, env=self.env)]

    def _release(self) -> None:
        result = subprocess.run(
            ["/bin/sh", "-c", f"exec {procfile()['release']}"],
            env=parley_env(self.env),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr

    def start(self) -> Deployment:
        for process in [*self.workers, *self.apis]:
            process.start()
        return self

    @property
    def api(self) -> ServerProcess:
        """The first API process."""
        return self.apis[0]

    @property
    def base_urls(self) -> Sequence[str]:
        """One per API process."""
        return [api.base_url for api in self.apis]

    def count_rows(self, table: str, **equal: str) -> int:
        """Rows of one of Parley's tables whose columns equal the given values."""
        where = " AND ".join(f"{column} = ?" for column in equal)
        return self.backend.count(table, where, tuple(equal.values()))

    def close(self) -> None:
        """Kill every process."""
        for process in [*self.apis, *self.workers]:
            process.kill()
