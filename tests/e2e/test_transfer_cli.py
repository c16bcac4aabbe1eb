"""``parley export`` and ``parley import`` on the data directly, beside a running ``parley serve``:
the export reads while the service runs, the import into the service's own SQLite data is refused
while the service holds it, and a session imported into other data goes on in a server started there."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.backends import Backend
from tests.e2e.server import ServerProcess, parley_env
from tests.transfer_support import OPERATOR, content

ALICE = {"X-User-Id": "alice"}
ORDER_MUGS = '[[tool:place_order|{"item": "mug", "quantity": 2}]] two mugs please'


def _cli(*args: str, env: dict[str, str], stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "parley.cli", *args],
        input=stdin,
        capture_output=True,
        env=parley_env(env),
        timeout=120,
    )


def test_export_beside_the_service_and_import_into_other_data(
    start_server: Any, backend: Backend, tmp_path: Path
) -> None:
    server: ServerProcess = start_server(PARLEY_OPERATOR_HEADER_ENABLED="true")
    with server.client() as client:
        sid = client.post("/v1/chat", json={"user_id": "alice", "message": "hello"}).json()["session_id"]
        body = client.post(
            "/v1/chat", json={"user_id": "alice", "session_id": sid, "message": ORDER_MUGS}
        ).json()
        assert body["status"] == "interrupted", body
        [pending] = body["interrupt"]
        over_http = client.get(f"/v1/sessions/{sid}/export", headers=OPERATOR).content

    source_env = {**backend.env(), "PARLEY_DATA_DIR": str(backend.data_dir)}
    exported = _cli("export", sid, env=source_env)
    assert exported.returncode == 0, exported.stderr.decode()
    assert content(exported.stdout) == content(over_http)

    into_itself = _cli("import", env=source_env, stdin=exported.stdout)
    assert into_itself.returncode != 0
    if backend.database_url is None:
        assert into_itself.returncode == 2
        assert b"another Parley process" in into_itself.stderr
        assert b"/v1/sessions/import" in into_itself.stderr
    else:
        assert into_itself.returncode == 1
        assert b"exists" in into_itself.stderr

    other = tmp_path / "other"
    other_env = {"PARLEY_DATA_DIR": str(other)}
    imported = _cli("import", env=other_env, stdin=exported.stdout)
    assert imported.returncode == 0, imported.stderr.decode()
    assert sid.encode() in imported.stderr
    again = _cli("export", sid, env=other_env)
    assert again.returncode == 0, again.stderr.decode()
    assert content(again.stdout) == content(exported.stdout)

    elsewhere = ServerProcess(other, env={"PARLEY_OPERATOR_HEADER_ENABLED": "true"}).start()
    try:
        with elsewhere.client() as client:
            done = client.post(
                f"/v1/sessions/{sid}/resume",
                json={"user_id": "alice", "interrupt_id": pending["id"], "value": {"decision": "approve"}},
            )
            assert done.status_code == 200, done.text
            assert done.json()["status"] == "completed"
    finally:
        elsewhere.kill()


def test_a_damaged_document_is_refused_with_where(
    start_server: Any, backend: Backend, tmp_path: Path
) -> None:
    server: ServerProcess = start_server()
    with server.client() as client:
        sid = client.post("/v1/chat", json={"user_id": "alice", "message": "hello"}).json()["session_id"]
        document = client.get(f"/v1/sessions/{sid}/export", headers=ALICE).content
    other_env = {"PARLEY_DATA_DIR": str(tmp_path / "other")}
    refused = _cli("import", env=other_env, stdin=document[: len(document) // 2])
    assert refused.returncode == 1
    assert b"cannot import at body." in refused.stderr
    assert b"truncated" in refused.stderr
    missing = _cli(
        "export", "no-such-session", env={**backend.env(), "PARLEY_DATA_DIR": str(backend.data_dir)}
    )
    assert missing.returncode == 1
    assert b"not found" in missing.stderr
