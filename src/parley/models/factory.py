"""Build the chat model that settings name."""

from __future__ import annotations

import os
from typing import Any

from langchain_core.language_models import BaseChatModel

from parley.core.errors import ConfigurationError
from parley.models.scripted import ScriptedChatModel, load_script
from parley.settings import Settings

_EXTRAS = {"openai": "openai", "anthropic": "anthropic", "ollama": "ollama"}
_KEYS = {"openai": "OPENAI_API_KEY", "anthropic": "ANTHROPIC_API_KEY"}


def _provider_kwargs(provider: str, settings: Settings) -> dict[str, Any]:
    kwargs: dict[str, Any] = {}
    if settings.model_temperature is not None:
        kwargs["temperature"] = settings.model_temperature
    if provider == "openai":
        kwargs["stream_usage"] = True  # token counts on streamed answers too
    if settings.model_base_url is not None:
        kwargs["base_url"] = settings.model_base_url
        if provider == "openai" and not os.environ.get("OPENAI_API_KEY"):
            # Self-hosted OpenAI-compatible servers (vLLM, llama.cpp) take any key; the client needs one.
            kwargs["api_key"] = "unused"
    if provider == "ollama":
        if settings.model_max_tokens is not None:
            kwargs["num_predict"] = settings.model_max_tokens
        return kwargs
    if settings.model_max_tokens is not None:
        kwargs["max_tokens"] = settings.model_max_tokens
    if settings.model_timeout_seconds is not None:
        kwargs["timeout"] = settings.model_timeout_seconds
    kwargs["max_retries"] = settings.model_max_retries
    return kwargs


def _local(settings: Settings) -> BaseChatModel:
    from parley.models.local import LocalChatModel, bundled_model_path

    path = settings.local_model_path or bundled_model_path()
    if not path.is_file():
        raise ConfigurationError(f"PARLEY_LOCAL_MODEL_PATH={path}: no such file")
    model = LocalChatModel(
        model_path=path,
        n_ctx=settings.local_context_tokens,
        max_tokens=settings.model_max_tokens or settings.local_max_tokens,
        temperature=(
            settings.model_temperature
            if settings.model_temperature is not None
            else settings.local_temperature
        ),
        top_k=settings.local_top_k,
        top_p=settings.local_top_p,
        repeat_penalty=settings.local_repeat_penalty,
        seed=None if settings.local_seed < 0 else settings.local_seed,
        loop_ngram=settings.local_loop_ngram,
        loop_repeats=settings.local_loop_repeats,
        pool_size=settings.local_instances,
        threads_per_instance=settings.local_threads,
    )
    try:
        model.load()
    except ConfigurationError:
        raise
    except Exception as exc:
        raise ConfigurationError(f"the local model at {path} could not be loaded: {exc}") from exc
    return model


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
        return _local(settings)
    provider, sep, model = name.partition(":")
    if not sep or not provider or not model:
        raise ConfigurationError(
            f"PARLEY_MODEL={name!r}: expected 'provider:model' (e.g. openai:gpt-4o-mini), "
            "'local' or 'scripted'."
        )
    key = _KEYS.get(provider)
    if key and settings.model_base_url is None and not os.environ.get(key):
        raise ConfigurationError(f"PARLEY_MODEL={name!r} needs {key} in the environment.")
    # Imported here: langchain's provider registry is only needed when a provider is configured.
    from langchain.chat_models import init_chat_model

    try:
        chat_model: BaseChatModel = init_chat_model(
            model, model_provider=provider, **_provider_kwargs(provider, settings)
        )
    except ImportError as exc:
        extra = _EXTRAS.get(provider)
        hint = f"pip install 'parley[{extra}]'" if extra else f"install LangChain's package for {provider!r}"
        raise ConfigurationError(f"PARLEY_MODEL={name!r} needs the provider package: {hint} ({exc})") from exc
    except Exception as exc:
        raise ConfigurationError(
            f"PARLEY_MODEL={name!r} cannot be used: {type(exc).__name__}: {exc}"
        ) from exc
    return chat_model
