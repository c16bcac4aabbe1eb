"""API keys end to end: a real ``parley serve`` with ``PARLEY_AUTH=keys``, keys made with the real ``parley
keys create`` (its last line captured, as a script would), used, revoked with ``parley keys revoke`` beside
the running service, then refused; and ``parley serve`` refusing a non-loopback bind with auth off."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.backends import Backend
from tests.e2e.server import ServerProcess, create_key, parley_env
from tests.waiting import wait_until

ORDER_MUGS = '[[tool:place_order|{"item": "mug", "quantity": 2}]] two mugs please'


def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "parley.cli", *args],
        capture_output=True,
        text=True,
        env=parley_env(env),
        timeout=120,
    )


def test_keys_made_used_and_revoked_with_the_cli_beside_a_running_service(
    start_server: Any, backend: Backend
) -> None:
    # Revocations reach the service within its key cache's TTL; a short one keeps the wait short.
    server: ServerProcess = start_server(PARLEY_AUTH="keys", PARLEY_KEY_CACHE_SECONDS="0.5")
    env = {**backend.env(), "PARLEY_DATA_DIR": str(backend.data_dir)}
    alice = create_key(env, "--role", "user", "--user", "alice", "--name", "alice's phone")
    operator = create_key(env, "--role", "operator", "--name", "desk 1")
    assert alice.startswith("parley_")
    assert operator.startswith("parley_")

    with server.client() as client:
        assert client.get("/v1/sessions").status_code == 401
        as_alice = {"Authorization": f"Bearer {alice}"}
        chat = client.post("/v1/chat", json={"message": "hello"}, headers=as_alice)
        assert chat.status_code == 200, chat.text
        waiting = client.post(
            "/v1/chat",
            json={"message": ORDER_MUGS, "session_id": chat.json()["session_id"]},
            headers=as_alice,
        ).json()
        [pending] = waiting["interrupt"]
        answered = client.post(
            f"/v1/sessions/{waiting['session_id']}/resume",
            # The body's user_id is the key's own: it may be given, and it names nobody else.
            json={"user_id": "alice", "interrupt_id": pending["id"], "value": {"decision": "approve"}},
            headers=as_alice,
        )
        assert answered.status_code == 200, answered.text
        seen = client.get(f"/v1/interrupts/{pending['id']}", headers={"Authorization": f"Bearer {operator}"})
        assert seen.status_code == 200
        who = seen.json()["answered_by"]
        assert (who["authenticated"], who["role"], who["key_name"], who["user_id"]) == (
            True,
            "user",
            "alice's phone",
            "alice",
        )

        listed = _cli("keys", "list", env=env)
        assert listed.returncode == 0, listed.stderr
        [row] = [line for line in listed.stdout.splitlines() if "alice's phone" in line]
        key_id = row.split()[0]
        assert key_id in alice
        assert alice.split("_", 2)[2] not in listed.stdout  # never a secret

        revoked = _cli("keys", "revoke", key_id, env=env)
        assert revoked.returncode == 0, revoked.stderr
        wait_until(
            lambda: client.get("/v1/sessions", headers=as_alice).status_code == 401,
            timeout=10,
            what="the revoked key refused",
        )
        refused = client.get("/v1/sessions", headers=as_alice)
        assert refused.headers["WWW-Authenticate"] == 'Bearer realm="parley", error="invalid_token"'
        assert refused.json()["type"] == "/problems/invalid-token"

    unknown = _cli("keys", "revoke", "0123456789ab", env=env)
    assert unknown.returncode == 1
    assert "no API key 0123456789ab" in unknown.stderr


def test_serve_refuses_a_public_bind_with_auth_off(tmp_path: Path) -> None:
    refused = _cli("serve", "--host", "0.0.0.0", "--port", "0", "--data-dir", str(tmp_path), env={})
    assert refused.returncode == 2
    [line] = refused.stderr.strip().splitlines()
    assert line.startswith("parley: cannot start: refusing to serve 0.0.0.0 with PARLEY_AUTH=off")
    assert "PARLEY_ALLOW_UNAUTHENTICATED_BIND" in line
    assert not (tmp_path / "parley.sqlite").exists()  # refused before anything was opened
