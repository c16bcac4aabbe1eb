"""``parley``: the command line. ``parley serve`` runs the API with the embedded runner."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from parley.core.errors import ConfigurationError
from parley.settings import Settings


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="parley", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the HTTP API (embedded: SQLite + in-process runner)")
    serve.add_argument("--host", help="bind address (PARLEY_HOST)")
    serve.add_argument("--port", type=int, help="port; 0 picks a free one (PARLEY_PORT)")
    serve.add_argument("--data-dir", type=Path, help="where the SQLite file lives (PARLEY_DATA_DIR)")
    serve.add_argument("--database-url", help="sqlite:///path, overrides --data-dir")
    serve.add_argument("--graph", help="package.module:attr of the graph (PARLEY_GRAPH)")
    serve.add_argument("--model", help="provider:model, or scripted (PARLEY_MODEL)")
    serve.add_argument("--log-level", choices=["debug", "info", "warning", "error"])
    return parser


def _setting_errors(exc: ValidationError) -> list[str]:
    """One line per wrong setting, named as the operator sets it (``PARLEY_DURABILITY: …``); the value is
    left out, as it may be a secret."""
    lines = []
    for error in exc.errors(include_url=False, include_input=False):
        where = f"PARLEY_{str(error['loc'][0]).upper()}" if error["loc"] else "settings"
        lines.append(f"{where}: {error['msg'].removeprefix('Value error, ')}")
    return lines


def _configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


async def _serve_prepared(settings: Settings, config: Any) -> int:
    import uvicorn

    from parley.api.app import create_app, prepare_services

    try:
        # Open storage, build the model and load the graph before binding the port, so that a service
        # that cannot work refuses to start with one clear line instead of a traceback — and hand them
        # to the app, which uses them rather than building everything a second time.
        prepared = await prepare_services(settings)
    except ConfigurationError as exc:
        print(f"parley: cannot start: {exc}", file=sys.stderr)
        return 2
    config.app = create_app(settings, prepared=prepared)
    server = uvicorn.Server(config)
    await server.serve()
    # uvicorn reports a failed lifespan startup by not starting, not by raising.
    return 0 if server.started else 3


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    overrides: dict[str, Any] = {
        key: value
        for key, value in {
            "host": args.host,
            "port": args.port,
            "data_dir": args.data_dir,
            "database_url": args.database_url,
            "graph": args.graph,
            "model": args.model,
            "log_level": args.log_level,
        }.items()
        if value is not None
    }
    try:
        settings = Settings(**overrides)
    except ValidationError as exc:
        for line in _setting_errors(exc):
            print(f"parley: invalid setting {line}", file=sys.stderr)
        return 2
    _configure_logging(settings.log_level)
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


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``parley`` command."""
    args = _parser().parse_args(argv)
    if args.command == "serve":
        return _serve(args)
    raise AssertionError(args.command)


if __name__ == "__main__":
    sys.exit(main())
