"""The OpenAI provider path for real: llama-cpp-python's OpenAI-compatible server serves the same GGUF on a
loopback port, and Parley talks to it with PARLEY_MODEL=openai:… and PARLEY_MODEL_BASE_URL."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from parley.models.local import bundled_model_path
from tests.conftest import AppHarness
from tests.e2e.server import ServerProcess, free_port


@pytest.fixture(scope="module")
def openai_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    log = tmp_path_factory.mktemp("llama") / "server.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "llama_cpp.server",
                "--model",
                str(bundled_model_path()),
                "--model_alias",
                "smollm2",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--n_ctx",
                "2048",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    base_url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 90
        while True:
            assert process.poll() is None, log.read_text()
            try:
                if httpx.get(f"{base_url}/models", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        yield base_url
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_parley_serves_turns_from_an_openai_compatible_server(openai_server: str, tmp_path: Path) -> None:
    server = ServerProcess(
        tmp_path / "data",
        env={
            "PARLEY_MODEL": "openai:smollm2",
            "PARLEY_MODEL_BASE_URL": openai_server,
            "PARLEY_MODEL_MAX_TOKENS": "32",
        },
    ).start()
    try:
        with server.client() as client:
            body = client.post(
                "/v1/chat", json={"user_id": "alice", "message": "Say hello.", "wait": 60}
            ).json()
        assert body["status"] == "completed", body
        assert body["reply"]
        assert body["usage"]["model_calls"] == 1
        assert body["usage"]["output_tokens"] > 0
    finally:
        server.kill()


@pytest.mark.sqlite_only  # about the model path; langchain-openai's client also outlives one event loop
async def test_tokens_stream_from_the_openai_provider(
    openai_server: str, harness_factory: Any, make_settings: Any
) -> None:
    h: AppHarness = await harness_factory(
        make_settings(model="openai:smollm2", model_base_url=openai_server, model_max_tokens=32)
    )
    accepted = (await h.chat(message="Count to five.", wait=0)).json()
    tokens: list[str] = []
    async with h.services.bus.subscribe(accepted["message_id"]) as queue:
        while True:
            event = await asyncio.wait_for(queue.get(), 60)
            if event.kind == "token":
                tokens.append(event.data["text"])
            if event.kind == "done":
                final = event.data
                break
    assert final.status.value == "completed"
    assert len(tokens) > 1
    assert "".join(tokens).strip() == final.reply.strip()
