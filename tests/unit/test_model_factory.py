from __future__ import annotations

from pathlib import Path

import pytest

from parley.core.errors import ConfigurationError
from parley.models.factory import build_chat_model
from parley.models.scripted import ScriptedChatModel, ScriptStep
from parley.settings import Settings


def test_unset_model_is_the_scripted_one(tmp_path: Path) -> None:
    model = build_chat_model(Settings(data_dir=tmp_path, model=None))
    assert isinstance(model, ScriptedChatModel)


def test_scripted_model_loads_its_script(tmp_path: Path) -> None:
    script = tmp_path / "s.json"
    script.write_text('[{"text": "first"}]')
    model = build_chat_model(Settings(data_dir=tmp_path, model="scripted", scripted_script=script))
    assert isinstance(model, ScriptedChatModel)
    assert model.script == [ScriptStep(text="first")]


@pytest.mark.parametrize(
    ("name", "needle"),
    [
        ("local", "not part of this build"),
        ("gpt-4o", "provider:model"),
        ("nosuchprovider:model-x", "cannot be used"),
        ("openai:gpt-4o-mini", "provider package"),
    ],
)
def test_unusable_models_are_clear_startup_errors(tmp_path: Path, name: str, needle: str) -> None:
    with pytest.raises(ConfigurationError, match=needle):
        build_chat_model(Settings(data_dir=tmp_path, model=name))
