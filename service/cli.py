"""The ``descent`` command: ``serve`` runs the service, ``worker`` a Celery worker, ``migrate`` the schema
migrations, ``openapi`` prints the OpenAPI document."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from service.logs import configure_logging
    from service.settings import Settings

    # The factory reads its settings from the environment, so flags travel the same way.
    for flag, var in (("host", "DESCENT_HOST"), ("port", "DESCENT_PORT"), ("log_level", "DESCENT_LOG_LEVEL")):
        value = getattr(args, flag)
        if value is not None:
            os.environ[var] = str(value)
    settings = Settings()
    configure_logging(settings.log_level)
    uvicorn.run(
        "service.app:create_app",
        factory=True,
        host=settings.host,
        port=settings.port,
        loop="uvloop",
        http="httptools",
        log_level=settings.log_level,
        # The service writes its own JSON access line per request (with the request id).
        access_log=False,
        server_header=False,
        # Client addresses are neither logged nor used, so X-Forwarded-For needs no parsing.
        proxy_headers=False,
    )
    return 0


def _openapi(args: argparse.Namespace) -> int:
    from service.app import create_app

    document = create_app().openapi()
    text = json.dumps(document, sort_keys=True, indent=2, ensure_ascii=False) + "\n"
    sys.stdout.buffer.write(text.encode("utf-8"))
    sys.stdout.flush()
    return 0


def _worker(args: argparse.Namespace) -> int:
    from service.runners.celery_worker import main as worker_main

    worker_main(["--hostname", args.hostname] if args.hostname else [])
    return 0


def _migrate(args: argparse.Namespace) -> int:
    from service.settings import Settings
    from service.store import open_store

    open_store(Settings().database_url).close()
    print("the store's schema is up to date")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``descent`` console command."""
    parser = argparse.ArgumentParser(prog="descent", description="Descent: gradient descent as a service.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve = commands.add_parser(
        "serve", help="run the HTTP service with uvicorn (settings from DESCENT_* variables)"
    )
    serve.add_argument("--host", help="interface to bind (default: DESCENT_HOST or 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to listen on (default: DESCENT_PORT or 8000)")
    serve.add_argument(
        "--log-level",
        choices=["critical", "error", "warning", "info", "debug"],
        help="log level (default: DESCENT_LOG_LEVEL or info)",
    )
    serve.set_defaults(handler=_serve)
    openapi = commands.add_parser("openapi", help="print the OpenAPI document (JSON, sorted keys) to stdout")
    openapi.set_defaults(handler=_openapi)
    worker = commands.add_parser(
        "worker", help="run a Celery worker that trains jobs (DESCENT_RUNNER=celery; DESCENT_BROKER_URL)"
    )
    worker.add_argument("--hostname", help="Celery node name (default: descent@<host>)")
    worker.set_defaults(handler=_worker)
    migrate = commands.add_parser("migrate", help="create or upgrade the store's schema, then exit")
    migrate.set_defaults(handler=_migrate)
    args = parser.parse_args(argv)
    result: int = args.handler(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
