"""``parley``: the command line.

``parley serve`` runs the HTTP API (with the in-process runner by default, or ``--runner queue``);
``parley worker`` runs turns from the queue (scale-out); ``parley migrate`` applies the database's
migrations and exits; ``parley export`` / ``parley import`` move a session's document (``cli_transfer``);
``parley keys`` manages API keys (``cli_keys``); ``parley chat`` is a terminal chat against a running
service (``parley.cli_chat``).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import secrets
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from parley.cli_chat.options import DEFAULT_URL, ChatOptions, default_user
from parley.core.auth import CallerRole
from parley.core.errors import ConfigurationError
from parley.settings import Settings
from parley.webhooks.signing import SECRET_PREFIX


def _storage_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", type=Path, help="where the SQLite files live (PARLEY_DATA_DIR)")
    parser.add_argument(
        "--database-url", help="sqlite:///path or postgresql://user@host:port/db (PARLEY_DATABASE_URL)"
    )
    parser.add_argument("--log-level", choices=["debug", "info", "warning", "error"])


def _runtime_options(parser: argparse.ArgumentParser) -> None:
    """What a process that runs (or serves) turns takes besides storage: migrations, graph, model."""
    parser.add_argument(
        "--no-migrate",
        action="store_true",
        help="do not apply migrations at start (run `parley migrate` first; PARLEY_MIGRATE_ON_START=false)",
    )
    parser.add_argument("--graph", help="package.module:attr of the graph (PARLEY_GRAPH)")
    parser.add_argument("--model", help="provider:model, or scripted (PARLEY_MODEL)")
    _storage_options(parser)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="parley", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the HTTP API")
    serve.add_argument("--host", help="bind address (PARLEY_HOST)")
    serve.add_argument("--port", type=int, help="port; 0 picks a free one (PARLEY_PORT)")
    serve.add_argument(
        "--runner",
        choices=["inprocess", "queue"],
        help="run turns in this process, or leave them to `parley worker` processes (PARLEY_RUNNER)",
    )
    _runtime_options(serve)
    worker = commands.add_parser("worker", help="run turns from the queue (needs PostgreSQL)")
    worker.add_argument("--concurrency", type=int, help="turns at once (PARLEY_WORKER_CONCURRENCY)")
    _runtime_options(worker)
    migrate = commands.add_parser("migrate", help="apply the database's migrations and exit")
    _storage_options(migrate)
    export = commands.add_parser("export", help="write a session's document to stdout (operators)")
    export.add_argument("session_id", help="the session to export")
    export.add_argument("--graph", help="package.module:attr of the graph (PARLEY_GRAPH)")
    _storage_options(export)
    import_ = commands.add_parser("import", help="create a session from a document on stdin (operators)")
    import_.add_argument("--replace", action="store_true", help="overwrite a session of the same id")
    import_.add_argument("--graph", help="package.module:attr of the graph (PARLEY_GRAPH)")
    _storage_options(import_)
    keys = commands.add_parser("keys", help="create, list and revoke API keys (PARLEY_AUTH=keys)")
    key_commands = keys.add_subparsers(dest="keys_command", required=True)
    create = key_commands.add_parser("create", help="make a key; it is printed once, alone on the last line")
    create.add_argument("--role", required=True, choices=[role.value for role in CallerRole])
    create.add_argument("--user", dest="key_user", help="the user a user key acts for (user keys only)")
    create.add_argument("--name", dest="key_name", help="a name to tell the key by (shown in list)")
    create.add_argument(
        "--callback-url",
        help="the completion webhook of messages this key posts without a callback_url "
        "(a host PARLEY_WEBHOOK_ALLOWED_HOSTS allows)",
    )
    _storage_options(create)
    list_ = key_commands.add_parser("list", help="every key, revoked ones included; never a secret")
    _storage_options(list_)
    revoke = key_commands.add_parser("revoke", help="revoke a key: refused from then on")
    revoke.add_argument("key_id", help="the key's id (as list shows it)")
    _storage_options(revoke)
    webhooks = commands.add_parser("webhooks", help="completion webhooks")
    webhook_commands = webhooks.add_subparsers(dest="webhooks_command", required=True)
    webhook_commands.add_parser(
        "secret", help="print a new signing secret for PARLEY_WEBHOOK_SECRET (whsec_ + 32 random bytes)"
    )
    chat = commands.add_parser("chat", help="chat with a running Parley service in this terminal")
    chat.add_argument("--url", default=DEFAULT_URL, help="the service (default: %(default)s)")
    chat.add_argument(
        "--user", help="your user id (default: your login name; with a user's API key, the key's user)"
    )
    chat.add_argument(
        "--api-key",
        default=os.environ.get("PARLEY_API_KEY"),
        help="an API key, sent as Authorization: Bearer (default: PARLEY_API_KEY)",
    )
    chat.add_argument("--session", help="continue this session (default: the first message starts one)")
    chat.add_argument(
        "--graph", help="the graph a new session talks to (GET /v1/graphs; default: the service's first)"
    )
    chat.add_argument(
        "--poll-seconds",
        type=float,
        default=1.0,
        help="how often to check on an operator's review while waiting for it (default: %(default)s)",
    )
    return parser


def _settings(args: argparse.Namespace, **extra: Any) -> Settings | None:
    """Settings from the environment and the flags given; None (after saying why) if they are invalid."""
    flags = {
        "host": getattr(args, "host", None),
        "port": getattr(args, "port", None),
        "data_dir": args.data_dir,
        "database_url": args.database_url,
        "graph": getattr(args, "graph", None),
        "model": getattr(args, "model", None),
        "log_level": args.log_level,
        "runner": getattr(args, "runner", None),
        "worker_concurrency": getattr(args, "concurrency", None),
        **extra,
    }
    try:
        return Settings(**{key: value for key, value in flags.items() if value is not None})
    except ValidationError as exc:
        for line in _setting_errors(exc):
            print(f"parley: invalid setting {line}", file=sys.stderr)
        return None


def _setting_errors(exc: ValidationError) -> list[str]:
    """One line per wrong setting, named as the operator sets it (``PARLEY_DURABILITY: …``); the value is
    left out, as it may be a secret."""
    lines = []
    for error in exc.errors(include_url=False, include_input=False):
        where = f"PARLEY_{str(error['loc'][0]).upper()}" if error["loc"] else "settings"
        lines.append(f"{where}: {error['msg'].removeprefix('Value error, ')}")
    return lines


def _configure_logging(settings: Settings) -> None:
    from parley.observability.logs import configure_logging

    configure_logging(settings.log_level, settings.log_format)


async def _serve_prepared(settings: Settings, config: Any) -> int:
    import uvicorn

    from parley.api.app import create_app, prepare_services
    from parley.heap import freeze_startup_heap

    try:
        # Open storage, build the model and load the graph before binding the port, so that a service
        # that cannot work refuses to start with one clear line instead of a traceback — and hand them
        # to the app, which uses them rather than building everything a second time.
        prepared = await prepare_services(settings)
    except ConfigurationError as exc:
        print(f"parley: cannot start: {exc}", file=sys.stderr)
        return 2
    config.app = create_app(settings, prepared=prepared)
    # Everything built so far lives as long as the process: out of the collector's way (heap.py).
    freeze_startup_heap()
    server = uvicorn.Server(config)
    await server.serve()
    # uvicorn reports a failed lifespan startup by not starting, not by raising.
    return 0 if server.started else 3


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    settings = _settings(args, migrate_on_start=False if args.no_migrate else None)
    if settings is None:
        return 2
    if settings.auth == "off" and not settings.binds_loopback and not settings.allow_unauthenticated_bind:
        print(
            f"parley: cannot start: refusing to serve {settings.host} with PARLEY_AUTH=off (anyone who "
            "reaches it could act as any user); set PARLEY_AUTH=keys, bind 127.0.0.1, or set "
            "PARLEY_ALLOW_UNAUTHENTICATED_BIND=true",
            file=sys.stderr,
        )
        return 2
    _configure_logging(settings)
    from parley.api.app import create_app
    from parley.api.connections import ConnectionLimits, guarded_protocol

    config = uvicorn.Config(
        create_app(settings),  # replaced, once its services are open, by the app that takes them over
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        log_config=None,
        timeout_graceful_shutdown=int(settings.shutdown_grace_seconds) + 5,
        # uvicorn's httptools protocol, with deadlines on each request's head and body (api/connections.py).
        http=guarded_protocol(
            ConnectionLimits(
                header_timeout=settings.header_timeout_seconds,
                body_timeout=settings.body_timeout_seconds,
                max_header_bytes=settings.max_header_bytes,
            )
        ),
        timeout_keep_alive=settings.keep_alive_seconds,
        limit_concurrency=settings.max_connections,
    )
    # The loop uvicorn would choose (uvloop when installed), with the services opened on it.
    with asyncio.Runner(loop_factory=config.get_loop_factory()) as runner:
        return runner.run(_serve_prepared(settings, config))


def _worker(args: argparse.Namespace) -> int:
    settings = _settings(args, migrate_on_start=False if args.no_migrate else None)
    if settings is None:
        return 2
    if settings.backend != "postgres":
        print(
            "parley: cannot start: a worker needs PostgreSQL (PARLEY_DATABASE_URL=postgresql://…)",
            file=sys.stderr,
        )
        return 2
    _configure_logging(settings)
    from parley.heap import freeze_startup_heap
    from parley.runners.worker_main import run_worker

    async def _run() -> None:
        ready = asyncio.Event()

        async def _freeze_when_ready() -> None:
            await ready.wait()
            freeze_startup_heap()  # what it built to start lives as long as it does (heap.py)

        freezing = asyncio.create_task(_freeze_when_ready())
        try:
            await run_worker(settings, ready=ready)
        finally:
            freezing.cancel()

    try:
        asyncio.run(_run())
    except ConfigurationError as exc:
        print(f"parley: cannot start: {exc}", file=sys.stderr)
        return 2
    return 0


def _migrate(args: argparse.Namespace) -> int:
    settings = _settings(args, migrate_on_start=True)
    if settings is None:
        return 2
    _configure_logging(settings)
    from contextlib import AsyncExitStack

    from parley.storage.factory import open_storage

    async def _apply() -> int:
        async with AsyncExitStack() as stack:
            storage = await open_storage(settings, stack)
            return await storage.db.schema_version()

    try:
        version = asyncio.run(_apply())
    except ConfigurationError as exc:
        print(f"parley: cannot migrate: {exc}", file=sys.stderr)
        return 2
    print(f"parley: {settings.storage_label} is at schema version {version}")
    return 0


def _export(args: argparse.Namespace) -> int:
    from parley.cli_transfer import export_command

    settings = _settings(args, migrate_on_start=False)
    if settings is None:
        return 2
    _configure_logging(settings)
    return export_command(settings, args.session_id)


def _import(args: argparse.Namespace) -> int:
    from parley.cli_transfer import import_command

    settings = _settings(args)
    if settings is None:
        return 2
    _configure_logging(settings)
    return import_command(settings, replace=args.replace)


def _keys(args: argparse.Namespace) -> int:
    from parley import cli_keys

    settings = _settings(args)
    if settings is None:
        return 2
    _configure_logging(settings)
    if args.keys_command == "create":
        return cli_keys.create_command(
            settings,
            role=args.role,
            user_id=args.key_user,
            name=args.key_name,
            callback_url=args.callback_url,
        )
    if args.keys_command == "list":
        return cli_keys.list_command(settings)
    return cli_keys.revoke_command(settings, key_id=args.key_id)


def _webhooks(args: argparse.Namespace) -> int:
    # One subcommand today: a secret of the form Standard Webhooks receivers expect.
    print(SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode())
    return 0


def _chat(args: argparse.Namespace) -> int:
    from parley.cli_chat.loop import run_chat

    if args.poll_seconds <= 0:
        print("parley: --poll-seconds must be positive", file=sys.stderr)
        return 2
    if not args.url.startswith(("http://", "https://")):
        print(f"parley: --url {args.url}: give the service's http:// or https:// address", file=sys.stderr)
        return 2
    api_key = args.api_key or None
    if api_key is not None and not all("!" <= char <= "~" for char in api_key):
        print("parley: --api-key: an API key is printable ASCII without spaces", file=sys.stderr)
        return 2
    # With a key and no --user, name nobody: a user key acts for its own user (a service key must name one).
    user = args.user if args.user is not None else ("" if api_key else default_user())
    # The user travels in the X-User-Id header, which carries printable ASCII only.
    if (user or not api_key) and (
        not user or len(user) > 200 or not all("!" <= char <= "~" for char in user)
    ):
        print(
            f"parley: cannot chat as {user!r}: a user id is 1-200 printable ASCII characters without spaces "
            "(--user)",
            file=sys.stderr,
        )
        return 2
    return run_chat(
        ChatOptions(
            url=args.url,
            user_id=user,
            api_key=api_key,
            session_id=args.session,
            graph=args.graph,
            poll_seconds=args.poll_seconds,
        )
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``parley`` command."""
    args = _parser().parse_args(argv)
    commands = {
        "serve": _serve,
        "worker": _worker,
        "migrate": _migrate,
        "export": _export,
        "import": _import,
        "keys": _keys,
        "webhooks": _webhooks,
        "chat": _chat,
    }
    return commands[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
