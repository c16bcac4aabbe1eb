"""The OpenAPI document holds against the running server: Schemathesis fuzzes a real ``parley serve``.

Every check Schemathesis has runs (server errors, status codes, content types, response headers and
schemas, that valid input is accepted and invalid input refused, 405 + ``Allow`` for undocumented
methods, …) in all its phases (examples, coverage, fuzzing, stateful sequences that follow the ids one
response gives to the next request). It is derandomised (``--generation-deterministic``: Hypothesis's
fixed seed, no example database), so a run is the same run every time; the number of examples per
operation is bounded so that it takes a few tens of seconds. It talks to 127.0.0.1 only: both the
document and the base URL are the local server's.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.backends import Backend
from tests.e2e.server import ServerProcess, create_key

HOOKS = Path(__file__).with_name("schemathesis_hooks.py")
MAX_EXAMPLES = 50
MIN_CASES = 1000
"""Generated cases a run must reach, whatever the phases make of the examples per operation."""


@pytest.mark.parametrize("auth", ["off", "keys"])
def test_the_running_server_matches_its_openapi_document(
    start_server: Any, backend: Backend, tmp_path: Path, auth: str
) -> None:
    if auth == "keys" and backend.name != "sqlite":
        # Authentication is the same code on every backend (its queries run on each in
        # tests/integration/test_auth.py); one fuzzing run of it is enough, and each costs ~45 s.
        pytest.skip("the keys variant runs on SQLite only")
    server: ServerProcess = start_server(
        # The operator role on, so that the operator queue is reached (X-Role is fuzzed: user is 403).
        PARLEY_OPERATOR_HEADER_ENABLED="true",
        # Turns of the scripted model end at once; a short maximum keeps any wait that does not short.
        PARLEY_DEFAULT_WAIT="1",
        PARLEY_MAX_WAIT="2",
        PARLEY_AUTH=auth,
    )
    credentials = ""
    if auth == "keys":
        # A user key: every schema-valid request is then one it may make or is refused (403) for naming
        # another user — a service key would make a body without user_id (valid by the schema, which
        # cannot know the key) a 422. Schemathesis also sends requests without it, which must be 401.
        env_key = create_key(
            {**backend.env(), "PARLEY_DATA_DIR": str(backend.data_dir)}, "--role", "user", "--user", "alice"
        )
        # Named by the document's security scheme (not a plain --header), so that the checks which leave it
        # out to see the request refused know which header it is.
        credentials = f'\n[auth.openapi.bearer]\nbearer = "{env_key}"\n'

    env = {
        key: value
        for key, value in os.environ.items()
        if not key.lower().endswith("_proxy")  # nothing may route the run away from 127.0.0.1
    }
    env["SCHEMATHESIS_HOOKS"] = str(HOOKS)
    # A session document is accepted only if its checksum matches its content and its rows and checkpoints
    # make sense together, which no schema can say: a generated one, however schema-valid, is refused
    # (422). Real documents going in are tests/integration/test_transfer.py's; every other check still
    # runs on the import, and the positive-data check on every other operation.
    (tmp_path / "schemathesis.toml").write_text(
        '[[operations]]\ninclude-path = "/v1/sessions/import"\n'
        'checks.positive_data_acceptance.expected-statuses = ["201", "403", "409", "422"]\n' + credentials
    )
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "schemathesis.cli",
            "run",
            f"{server.base_url}/openapi.json",
            "--url",
            server.base_url,
            "--checks",
            "all",
            "--generation-deterministic",
            "--max-examples",
            str(MAX_EXAMPLES),
            "--workers",
            "1",
            "--header",
            "X-User-Id: alice",
            "--request-timeout",
            "30",
            "--no-color",
        ],
        cwd=tmp_path,  # whatever Schemathesis writes stays in the test's directory
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    report = result.stdout + result.stderr
    assert result.returncode == 0, report
    # Every operation was reached, and every generated case passed every check.
    operations = re.search(r"Selected: (\d+)/(\d+)", report)
    assert operations is not None, report
    assert operations[1] == operations[2], report
    assert f"Tested: {operations[2]}" in report, report
    counts = re.search(r"(\d+) generated, (\d+) passed", report)
    assert counts is not None, report
    assert counts[1] == counts[2], report
    assert int(counts[1]) >= int(operations[2]) * MAX_EXAMPLES, report
    assert int(counts[1]) >= MIN_CASES, report
    print(f"schemathesis: operations={operations[2]} cases={counts[1]} passed={counts[2]}")
    # No request made the server log an unhandled error.
    assert "Traceback" not in server.log(), server.log()
