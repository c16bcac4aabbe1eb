"""Build the chat model that settings name."""

from __future__ import annotations

from langchain_core.language_models import BaseChatModel

from parley.core.errors import ConfigurationError
from parley.models.scripted import ScriptedChatModel, load_script
from parley.settings import Settings


def build_chat_model(settings: Settings) -> BaseChatModel:
    """The configured chat model; a ``ConfigurationError`` that says what to do if it can't be built.

    Building happens at start-up so that a missing provider package or key stops the service with a
    clear message instead of failing the first user's message.
    """
    name = settings.model_name
    if name == "scripted":
        script = load_script(settings.scripted_script) if settings.scripted_script else []
        return ScriptedChatModel(script=script)
    if name == "local":
        raise ConfigurationError(
            "PARLEY_MODEL=local: the offline local model is not part of this build yet. "
            "Use PARLEY_MODEL=scripted, or provider:model (e.g. openai:gpt-4o-mini)."
        )
    provider, sep, model = name.partition(":")
    if not sep or not provider or not model:
        raise ConfigurationError(
            f"PARLEY_MODEL={name!r}: expected 'provider:model' (e.g. openai:gpt-4o-mini), "
            "'scripted' or 'local'."
        )
    # Imported here: langchain's provider registry is only needed when a provider is configured.
    from langchain.chat_models import init_chat_model

    try:
        return init_chat_model(model, model_provider=provider)
    except ImportError as exc:
        raise ConfigurationError(
            f"PARLEY_MODEL={name!r} needs the provider package for {provider!r}: {exc}"
        ) from exc
    except ValueError as exc:
        raise ConfigurationError(f"PARLEY_MODEL={name!r} cannot be used: {exc}") from exc
