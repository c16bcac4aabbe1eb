from __future__ import annotations

from pathlib import Path

import pytest

from parley.core.errors import ConfigurationError
from parley.models.factory import build_chat_model
from parley.models.scripted import ScriptedChatModel, ScriptStep
from parley.settings import Settings


def test_scripted_model_loads_its_script(tmp_path: Path) -> None:
    script = tmp_path / "s.json"
    script.write_text('[{"text": "first"}]')
    model = build_chat_model(Settings(data_dir=tmp_path, model="scripted", scripted_script=script))
    assert isinstance(model, ScriptedChatModel)
    assert model.script == [ScriptStep(text="first")]


@pytest.mark.parametrize(
    ("name", "needle"),
    [
        ("gpt-4o", "provider:model"),
        ("nosuchprovider:model-x", "cannot be used"),
        ("openai:gpt-4o-mini", "needs OPENAI_API_KEY"),
        ("anthropic:claude-sonnet-4", "needs ANTHROPIC_API_KEY"),
        ("ollama:llama3.2", "pip install 'parley\\[ollama\\]'"),
    ],
)
def test_unusable_models_are_clear_startup_errors(
    tmp_path: Path, name: str, needle: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    with pytest.raises(ConfigurationError, match=needle):
        build_chat_model(Settings(data_dir=tmp_path, model=name))


def test_provider_settings_reach_the_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    settings = Settings(
        data_dir=tmp_path,
        model="openai:served-model",
        model_base_url="http://127.0.0.1:9/v1",
        model_temperature=0.3,
        model_max_tokens=77,
        model_timeout_seconds=12,
        model_max_retries=4,
    )
    model = build_chat_model(settings)
    assert model.model_name == "served-model"  # type: ignore[attr-defined]
    assert model.temperature == 0.3  # type: ignore[attr-defined]
    assert model.max_tokens == 77  # type: ignore[attr-defined]
    assert model.max_retries == 4  # type: ignore[attr-defined]
    assert model.request_timeout == 12  # type: ignore[attr-defined]
    assert model.openai_api_base == "http://127.0.0.1:9/v1"  # type: ignore[attr-defined]


def test_a_missing_local_model_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="no such file"):
        build_chat_model(Settings(data_dir=tmp_path, model="local", local_model_path=tmp_path / "nope.gguf"))
