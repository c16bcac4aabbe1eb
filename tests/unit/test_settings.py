from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from parley.cli import main
from parley.settings import BusyPolicy, Settings


def test_defaults_are_the_embedded_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("PARLEY_DATA_DIR", "PARLEY_DATABASE_URL", "PARLEY_MODEL", "PARLEY_PORT"):
        monkeypatch.delenv(name, raising=False)
    settings = Settings()
    assert settings.host == "127.0.0.1"
    assert settings.port == 8000
    assert settings.sqlite_path == Path("data/parley.sqlite")
    assert settings.model_name == "local"
    assert settings.busy_policy is BusyPolicy.ENQUEUE
    assert 0 < settings.default_wait <= settings.max_wait


def test_reads_prefixed_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PARLEY_PORT", "9123")
    monkeypatch.setenv("PARLEY_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("PARLEY_BUSY_POLICY", "reject")
    monkeypatch.setenv("PARLEY_DEFAULT_WAIT", "0")
    settings = Settings()
    assert settings.port == 9123
    assert settings.sqlite_path == tmp_path / "parley.sqlite"
    assert settings.busy_policy is BusyPolicy.REJECT
    assert settings.default_wait == 0


def test_database_url_overrides_data_dir(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "ignored", database_url=f"sqlite:///{tmp_path}/x.db")
    assert settings.sqlite_path == tmp_path / "x.db"


@pytest.mark.parametrize(
    ("overrides", "needle"),
    [
        ({"graph": "no_colon"}, "package.module:attribute"),
        ({"memory_max_messages": 10, "memory_keep_messages": 10}, "memory_keep_messages"),
        ({"default_wait": 30, "max_wait": 10}, "default_wait"),
        ({"database_url": "mysql://localhost/x"}, "postgresql://"),
        ({"runner": "queue"}, "needs PostgreSQL"),
        ({"busy_policy": "drop"}, "busy_policy"),
        ({"port": 70000}, "port"),
        ({"max_value_depth": 250}, "max_value_depth"),  # past where checkpoints can carry it
        ({"rate_limit": "lots"}, "not a rate limit"),
        ({"rate_limit": "0/second"}, "not a rate limit"),
        ({"rate_limit_storage": "memcached://127.0.0.1"}, "redis://"),
        ({"cors_origins": "chat.example"}, "not an origin"),
        ({"cors_origins": "https://chat.example/path"}, "not an origin"),
        ({"max_queued_per_session": 0}, "max_queued_per_session"),
        ({"local_temperature": 2.5}, "local_temperature"),
        ({"local_top_p": 0}, "local_top_p"),
        ({"local_top_k": -1}, "local_top_k"),
        ({"local_repeat_penalty": 0.8}, "local_repeat_penalty"),  # below 1 rewards repeating
        ({"local_seed": -2}, "local_seed"),
        ({"local_loop_repeats": 1}, "local_loop_repeats"),
    ],
)
def test_refuses_unsafe_or_incoherent_values(overrides: dict[str, object], needle: str) -> None:
    with pytest.raises(ValidationError, match=needle):
        Settings(**overrides)


_DURATIONS = [
    "default_wait",
    "max_wait",
    "model_timeout_seconds",
    "retry_base_seconds",
    "retry_max_seconds",
    "turn_timeout_seconds",
    "shutdown_grace_seconds",
    "header_timeout_seconds",
    "body_timeout_seconds",
]


@pytest.mark.parametrize(
    "name",
    [*_DURATIONS, "review_amount_limit", "model_temperature", "local_temperature", "local_repeat_penalty"],
)
@pytest.mark.parametrize("value", ["inf", "-inf", "nan"])
def test_refuses_non_finite_numbers(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    monkeypatch.setenv(f"PARLEY_{name.upper()}", value)
    with pytest.raises(ValidationError, match=name):
        Settings()


@pytest.mark.parametrize("name", _DURATIONS)
def test_refuses_durations_beyond_their_bound(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    monkeypatch.setenv(f"PARLEY_{name.upper()}", "1e308")
    with pytest.raises(ValidationError, match=name):
        Settings()


@pytest.mark.parametrize("mode", ["async", "exit"])
def test_durability_other_than_sync_is_refused_with_the_reason(mode: str) -> None:
    with pytest.raises(ValidationError, match="needs 'sync'"):
        Settings(durability=mode)


def test_durability_sync_is_accepted() -> None:
    assert Settings(durability="sync").durability == "sync"


@pytest.mark.parametrize("mode", ["async", "exit"])
def test_parley_serve_refuses_async_durability_in_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path, mode: str
) -> None:
    monkeypatch.setenv("PARLEY_DURABILITY", mode)
    # A graph that cannot load: were the setting accepted, serve would stop at the graph (after opening
    # storage), not start serving.
    assert main(["serve", "--data-dir", str(tmp_path), "--graph", "tests.graphs.missing:graph"]) == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("parley: invalid setting PARLEY_DURABILITY: ")
    assert "needs 'sync'" in lines[0]
    assert not (tmp_path / "parley.sqlite").exists()


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("header_timeout_seconds", "0"),
        ("body_timeout_seconds", "0"),
        ("keep_alive_seconds", "0"),
        ("max_connections", "0"),
        ("max_header_bytes", "100"),
        ("max_header_bytes", str(2 * 1024 * 1024)),
    ],
)
def test_refuses_connection_limits_that_cannot_work(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(f"PARLEY_{name.upper()}", value)
    with pytest.raises(ValidationError, match=name):
        Settings()
