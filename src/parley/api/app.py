"""The app factory. Building the app touches nothing; its lifespan opens storage, builds the runner (and,
when this process runs turns itself, the model and the graph), starts it, and closes them all in reverse
order on shutdown.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass

from fastapi import FastAPI

from parley import __version__
from parley.api.deps import Services
from parley.api.errors import install_error_handlers
from parley.api.middleware import BodySizeLimit
from parley.api.openapi import install_openapi
from parley.api.page import install_page
from parley.api.routers import chat, interrupts, messages, ops, sessions, transfer
from parley.assembly import build_runner, open_journal
from parley.core.api_keys import KeyResolver
from parley.core.events import EventBus
from parley.settings import Settings
from parley.storage.factory import open_storage
from parley.storage.transfer import SqlTransfer

logger = logging.getLogger(__name__)


@asynccontextmanager
async def open_services(settings: Settings) -> AsyncIterator[Services]:
    """Build every service from settings; close them in reverse order on exit.

    Raises ``ConfigurationError`` with a message meant for the operator when storage cannot be
    opened, the model cannot be built or the graph cannot be loaded. The runner is built, not started.
    """
    async with AsyncExitStack() as stack:
        storage = await open_storage(settings, stack)
        bus = EventBus()
        journal = await open_journal(settings, storage, bus, stack, runs_turns=settings.runner == "inprocess")
        runner, _ = await build_runner(settings, storage, journal, stack)
        services = Services(
            settings=settings,
            store=storage.store,
            bus=bus,
            journal=journal,
            runner=runner,
            checkpointer=storage.checkpointer,
            transfer=SqlTransfer(db=storage.db, saver=storage.checkpointer, graph=settings.graph),
            keys=KeyResolver(store=storage.store, ttl_seconds=settings.key_cache_seconds),
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


async def prepare_services(settings: Settings) -> PreparedServices:
    """``open_services`` entered now and closed later, by whoever holds the result."""
    stack = AsyncExitStack()
    try:
        services = await stack.enter_async_context(open_services(settings))
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
        prepared = await prepare_services(settings)
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
            "parley ready: storage=%s runner=%s graph=%s model=%s",
            settings.storage_label,
            settings.runner,
            settings.graph,
            settings.model_name,
        )
        yield
    finally:
        await prepared.close()
    logger.info("parley stopped")


def create_app(settings: Settings | None = None, *, prepared: PreparedServices | None = None) -> FastAPI:
    """The Parley ASGI app. ``settings`` default to the environment's ``PARLEY_*`` variables; services
    ``prepared`` already are taken over by the app's lifespan, which otherwise opens its own."""
    resolved = settings if settings is not None else Settings()
    app = FastAPI(
        title="Parley",
        version=__version__,
        summary="A chatbot microservice: a LangGraph graph behind an HTTP API.",
        lifespan=_lifespan,
    )
    app.state.settings = resolved
    app.state.prepared = prepared
    install_error_handlers(app)
    install_openapi(app, resolved)
    app.add_middleware(
        BodySizeLimit,
        max_bytes=resolved.max_body_bytes,
        streamed={transfer.IMPORT_PATH: resolved.import_max_bytes},
    )
    for module in (chat, messages, transfer, sessions, interrupts, ops):
        app.include_router(module.router)
    install_page(app)
    return app
