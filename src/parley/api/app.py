"""The app factory. Building the app touches nothing; its lifespan opens storage, builds the runner (and,
when this process runs turns itself, the model and the graph), starts it, and closes them all in reverse
order on shutdown.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass

from fastapi import Depends, FastAPI
from opentelemetry.sdk.trace import TracerProvider
from starlette.middleware.cors import CORSMiddleware

from parley import __version__
from parley.api.deps import Services
from parley.api.errors import install_error_handlers
from parley.api.middleware import BodySizeLimit
from parley.api.openapi import install_openapi
from parley.api.page import install_page
from parley.api.rate_limit import RateLimit, enforce_rate_limit
from parley.api.request_context import RequestContext
from parley.api.routers import chat, graphs, interrupts, messages, ops, sessions, transfer
from parley.api.routers import metrics as metrics_route
from parley.assembly import build_runner, open_deliverer, open_journal
from parley.core.api_keys import KeyResolver
from parley.core.events import EventBus
from parley.observability.exposition import expose_metrics
from parley.observability.metrics import Metrics
from parley.observability.tracing import Tracing
from parley.observability.turns import TurnInstruments
from parley.runners.inprocess import InProcessRunner
from parley.settings import Settings
from parley.storage.factory import open_storage
from parley.storage.transfer import SqlTransfer
from parley.webhooks.destinations import DestinationPolicy

logger = logging.getLogger(__name__)


@asynccontextmanager
async def open_services(
    settings: Settings, *, tracer_provider: TracerProvider | None = None
) -> AsyncIterator[Services]:
    """Build every service from settings; close them in reverse order on exit.

    Raises ``ConfigurationError`` with a message meant for the operator when storage cannot be
    opened, the model cannot be built, the graph cannot be loaded or the metrics address cannot be bound.
    The runner is built, not started. ``tracer_provider`` (tests) replaces what the ``OTEL_*``
    environment asks for.
    """
    async with AsyncExitStack() as stack:
        metrics = Metrics(enabled=settings.metrics_enabled)
        tracing = Tracing.opened(stack, tracer_provider)
        storage = await open_storage(settings, stack)
        bus = EventBus()
        journal = await open_journal(settings, storage, bus, stack, runs_turns=settings.runner == "inprocess")
        runner, programs = await build_runner(
            settings, storage, journal, stack, telemetry=TurnInstruments(metrics=metrics, tracing=tracing)
        )
        if isinstance(runner, InProcessRunner):
            metrics.count_running(lambda: runner.running_turns)
        await expose_metrics(metrics, store=storage.store, settings=settings, stack=stack)
        await open_deliverer(settings, storage, stack, metrics=metrics)
        services = Services(
            settings=settings,
            store=storage.store,
            bus=bus,
            journal=journal,
            runner=runner,
            checkpointer=storage.checkpointer,
            transfer=SqlTransfer(
                db=storage.db, saver=storage.checkpointer, graphs=settings.graph_references()
            ),
            programs=programs,
            metrics=metrics,
            tracing=tracing,
            keys=KeyResolver(store=storage.store, ttl_seconds=settings.key_cache_seconds),
            webhooks=DestinationPolicy.parse(settings.webhook_allowed_hosts),
        )
        try:
            yield services
        finally:
            # Before storage closes: running turns get the grace period, the rest stay pending.
            await runner.stop(grace=settings.shutdown_grace_seconds)


@dataclass(frozen=True)
class PreparedServices:
    """Services already opened (by ``parley serve``, before binding the port), and how to close them."""

    services: Services
    close: Callable[[], Awaitable[None]]


async def prepare_services(
    settings: Settings, *, tracer_provider: TracerProvider | None = None
) -> PreparedServices:
    """``open_services`` entered now and closed later, by whoever holds the result."""
    stack = AsyncExitStack()
    try:
        services = await stack.enter_async_context(open_services(settings, tracer_provider=tracer_provider))
    except BaseException:
        await stack.aclose()
        raise
    return PreparedServices(services=services, close=stack.aclose)


def _warn_about_auth(settings: Settings) -> None:
    if settings.auth == "off":
        logger.warning(
            "AUTHENTICATION IS OFF (PARLEY_AUTH=off): every caller acts as whichever user it names. For "
            "local development only; set PARLEY_AUTH=keys and create keys with `parley keys create`."
        )
    elif settings.operator_header_enabled:
        logger.warning(
            "PARLEY_OPERATOR_HEADER_ENABLED is ignored with PARLEY_AUTH=keys: a key's role decides, "
            "and X-Role grants nothing."
        )


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    # Services opened before the app started are used, not built a second time; either way the
    # lifespan closes them (the runner first, then storage) before the server returns.
    prepared: PreparedServices | None = app.state.prepared
    app.state.prepared = None
    if prepared is None:
        prepared = await prepare_services(settings, tracer_provider=app.state.tracer_provider)
    rate_limit = RateLimit.from_settings(settings)
    app.state.rate_limit = rate_limit
    try:
        services = prepared.services
        app.state.services = services
        await services.runner.start()
        if settings.model is None and settings.runner == "inprocess":
            logger.warning(
                "PARLEY_MODEL is not set: using the offline 'local' model (SmolLM2-135M, in-process: small, "
                "and its answers are weak). Set PARLEY_MODEL=provider:model (e.g. openai:gpt-4o-mini) for a "
                "real one, or PARLEY_MODEL=scripted for the deterministic test model."
            )
        _warn_about_auth(settings)
        logger.info(
            "parley ready: storage=%s runner=%s graphs=%s model=%s",
            settings.storage_label,
            settings.runner,
            ",".join(f"{name}={reference}" for name, reference in settings.graph_references()),
            settings.model_name,
        )
        yield
    finally:
        await prepared.close()
        if rate_limit is not None:
            await rate_limit.close()
    logger.info("parley stopped")


def create_app(
    settings: Settings | None = None,
    *,
    prepared: PreparedServices | None = None,
    tracer_provider: TracerProvider | None = None,
) -> FastAPI:
    """The Parley ASGI app. ``settings`` default to the environment's ``PARLEY_*`` variables; services
    ``prepared`` already are taken over by the app's lifespan, which otherwise opens its own (with
    ``tracer_provider``, a test's, instead of what ``OTEL_*`` asks for)."""
    resolved = settings if settings is not None else Settings()
    app = FastAPI(
        title="Parley",
        version=__version__,
        summary="A chatbot microservice: a LangGraph graph behind an HTTP API.",
        lifespan=_lifespan,
    )
    app.state.settings = resolved
    app.state.prepared = prepared
    app.state.tracer_provider = tracer_provider
    install_error_handlers(app)
    install_openapi(app, resolved)
    app.add_middleware(
        BodySizeLimit,
        max_bytes=resolved.max_body_bytes,
        streamed={transfer.IMPORT_PATH: resolved.import_max_bytes},
    )
    for module in (chat, messages, transfer, sessions, interrupts, graphs):
        app.include_router(module.router, dependencies=[Depends(enforce_rate_limit)])
    # Health checks and metrics are never rate limited: a busy caller must not blind the operator.
    for module in (ops, metrics_route):
        app.include_router(module.router)
    install_page(app)
    if resolved.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=resolved.cors_origins,
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=CORS_REQUEST_HEADERS,
            expose_headers=CORS_RESPONSE_HEADERS,
            max_age=600,
        )
    # Outermost (added last): it sees every answer, a 413 of the size limit and a CORS refusal included.
    app.add_middleware(RequestContext)
    return app


CORS_REQUEST_HEADERS = [
    "Authorization",
    "Content-Type",
    "Idempotency-Key",
    "Last-Event-ID",
    "Prefer",
    "X-Request-Id",
    "X-Role",
    "X-User-Id",
]
"""What a page on another origin may send (beyond the CORS-safelisted headers)."""
CORS_RESPONSE_HEADERS = [
    "Location",
    "Preference-Applied",
    "Retry-After",
    "X-Message-Id",
    "X-Request-Id",
    "X-Session-Id",
]
"""What such a page may read of a response: where to poll, the ids of what it sent, when to retry."""
