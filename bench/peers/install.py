"""Each peer in a virtualenv of its own under ``bench/.peers/<name>/`` (git-ignored, never a dependency of
Parley): the peer from PyPI, then Parley itself without its dependencies, so that the peer can import
the benchmark's graph and Parley's scripted model (bench/peers/graph.py) with the peer's own LangGraph."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from bench.common import REPO

PEERS_DIR = REPO / "bench" / ".peers"
# What each peer's virtualenv gets from PyPI. langgraph-sdk is the official client; the peers take it
# in anyway, named here so that the report can give its version.
REQUIREMENTS: dict[str, list[str]] = {
    "langgraph": ["langgraph-cli[inmem]", "langgraph-sdk"],
    "aegra": ["aegra-cli==0.11.*", "aegra-api==0.11.*", "langgraph-sdk"],
}
# The oldest Python each peer runs on (Aegra 0.7 and later require 3.12; Parley's own venv may be 3.11).
MIN_PYTHON: dict[str, tuple[int, int]] = {"langgraph": (3, 11), "aegra": (3, 12)}
# The distributions whose versions the report gives, for each virtualenv.
REPORTED = (
    "langgraph",
    "langgraph-api",
    "langgraph-cli",
    "langgraph-sdk",
    "langchain-core",
    "aegra-api",
    "aegra-cli",
)


class InstallError(RuntimeError):
    """A peer did not install; the message is pip's own last lines."""


@dataclass(frozen=True)
class Peer:
    """An installed peer: its virtualenv and what it holds."""

    name: str
    venv: Path
    versions: dict[str, str]

    @property
    def bin(self) -> Path:
        return self.venv / "bin"


def _run(args: list[str], log: Path) -> None:
    with log.open("a", encoding="utf-8") as out:
        done = subprocess.run(args, stdout=out, stderr=subprocess.STDOUT, check=False)
    if done.returncode != 0:
        tail = log.read_text(encoding="utf-8").strip().splitlines()[-15:]
        raise InstallError(f"`{' '.join(args[-4:])}` exited {done.returncode}:\n" + "\n".join(tail))


def versions(python: Path) -> dict[str, str]:
    """The versions of ``REPORTED`` (those installed) and of Python in the environment of ``python``."""
    script = (
        "import json, sys, importlib.metadata as m\n"
        "found = {'python': sys.version.split()[0]}\n"
        f"for name in {list(REPORTED)!r}:\n"
        "    try: found[name] = m.version(name)\n"
        "    except m.PackageNotFoundError: pass\n"
        "print(json.dumps(found))\n"
    )
    out = subprocess.run([str(python), "-c", script], capture_output=True, text=True, check=True).stdout
    found: dict[str, str] = json.loads(out)
    return found


def interpreter(name: str) -> str:
    """A Python for the peer's virtualenv: ``PEERS_PYTHON_<NAME>`` if set, else this one if it is new
    enough, else the first ``python3.N`` (on PATH or under pyenv) that is."""
    override = os.environ.get(f"PEERS_PYTHON_{name.upper()}")
    if override:
        return override
    need = MIN_PYTHON[name]
    if sys.version_info[:2] >= need:
        return sys.executable
    for minor in range(need[1], need[1] + 4):
        found = shutil.which(f"python3.{minor}")
        pyenv = sorted(Path.home().glob(f".pyenv/versions/3.{minor}.*/bin/python3.{minor}"))
        if found or pyenv:
            return found or str(pyenv[-1])
    raise InstallError(
        f"{name} needs Python {need[0]}.{need[1]} or newer and none was found (PEERS_PYTHON_{name.upper()})"
    )


def install(name: str, *, log: Path) -> Peer:
    """The peer ``name``, installed now unless its virtualenv already holds what ``REQUIREMENTS`` asks."""
    venv = PEERS_DIR / name
    python = venv / "bin" / "python"
    stamp = venv / ".installed"
    wanted = json.dumps(REQUIREMENTS[name])
    if not (stamp.exists() and stamp.read_text(encoding="utf-8") == wanted):
        PEERS_DIR.mkdir(parents=True, exist_ok=True)
        if not python.exists():
            _run([interpreter(name), "-m", "venv", str(venv)], log)
        pip = [str(python), "-m", "pip", "install", "--disable-pip-version-check", "--quiet"]
        _run([*pip, *REQUIREMENTS[name]], log)
        _run([*pip, "--no-deps", "-e", str(REPO)], log)
        stamp.write_text(wanted, encoding="utf-8")
    return Peer(name=name, venv=venv, versions=versions(python))
