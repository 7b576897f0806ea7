"""The ``descent`` command.

Server commands: ``serve`` runs the service, ``worker`` a Celery worker, ``migrate`` the schema
migrations, ``openapi`` prints the OpenAPI document. Client commands (``datasets``, ``jobs``,
``models``, ``train``; see ``descent_client.cli``) speak to a running service over HTTP.
"""

from __future__ import annotations

import ctypes
import ipaddress
import json
import os
import sys
from collections.abc import Sequence
from types import FrameType

import click

from descent_client.cli import register
from descent_client.cli._options import common
from service.keys_cli import keys

LOG_LEVELS = ("critical", "error", "warning", "info", "debug")
# glibc gives each thread that allocates at once an arena of its own, up to 8 per core, and keeps what
# each one freed: the API's worker threads (up to 40) made its resident memory creep up by a few MiB a
# minute under mixed load. Two arenas held it flat (docs/benchmarks.md, Soak).
MALLOC_ARENAS = 2
_M_ARENA_MAX = -8  # mallopt's parameter number, from glibc's malloc.h


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@common
def cli() -> None:
    """Descent: gradient descent as a service."""


@cli.command()
@click.option("--host", help="interface to bind (default: DESCENT_HOST or 127.0.0.1)")
@click.option("--port", type=int, help="port to listen on (default: DESCENT_PORT or 8000)")
@click.option(
    "--log-level", type=click.Choice(LOG_LEVELS), help="log level (default: DESCENT_LOG_LEVEL or info)"
)
def serve(host: str | None, port: int | None, log_level: str | None) -> None:
    """Run the HTTP service with uvicorn (settings from DESCENT_* variables)."""
    import uvicorn

    from service.app import create_app
    from service.http.protocol import ProblemHttpToolsProtocol
    from service.logs import configure_logging
    from service.settings import Settings
    from service.state import begin_shutdown

    # Flags travel as the settings do, through the environment.
    for value, var in ((host, "DESCENT_HOST"), (port, "DESCENT_PORT"), (log_level, "DESCENT_LOG_LEVEL")):
        if value is not None:
            os.environ[var] = str(value)
    settings = Settings()
    if settings.auth == "none" and not is_loopback(settings.host):
        raise click.ClickException(
            f"refusing to serve on {settings.host} without authentication (DESCENT_AUTH=none): anyone who "
            "can reach the port could read, cancel and delete everything. Set DESCENT_AUTH=keys and create "
            "a key first: `descent keys create --owner NAME --admin` (or give a bootstrap admin key in "
            "DESCENT_BOOTSTRAP_KEY, made by `descent keys generate`), or serve on 127.0.0.1."
        )
    configure_logging(settings.log_level)
    limit_malloc_arenas()
    app = create_app(settings)

    class Server(uvicorn.Server):
        """Stops the workers and the event streams as soon as the signal arrives, not after the drain."""

        def handle_exit(self, sig: int, frame: FrameType | None) -> None:
            super().handle_exit(sig, frame)
            begin_shutdown(app)

    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        loop="uvloop",
        # httptools, with requests it cannot parse answered as problem+json like every other error.
        http=ProblemHttpToolsProtocol,
        log_level=settings.log_level,
        # The service writes its own JSON access line per request (with the request id).
        access_log=False,
        server_header=False,
        # The client address counts failed authentications; X-Forwarded-For names it only when it comes
        # from a proxy listed in DESCENT_FORWARDED_ALLOW_IPS.
        proxy_headers=bool(settings.forwarded_allow_ips),
        forwarded_allow_ips=settings.forwarded_allow_ips or None,
        # Requests still running when the grace is over are cancelled: the whole stop, workers
        # included, takes at most about DESCENT_SHUTDOWN_GRACE_S.
        timeout_graceful_shutdown=max(1, int(settings.shutdown_grace_s)),
    )
    Server(config).run()


def limit_malloc_arenas(arenas: int = MALLOC_ARENAS) -> bool:
    """Hold this process's malloc to ``arenas`` arenas (glibc only, and not when ``MALLOC_ARENA_MAX``
    already says how many); whether it was done. Arenas made before stay; threads made later share."""
    if "MALLOC_ARENA_MAX" in os.environ or not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt  # the C library the interpreter runs on
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(_M_ARENA_MAX, arenas))


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or an address) is this machine's loopback interface only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@cli.command()
def openapi() -> None:
    """Print the OpenAPI document (JSON, sorted keys) to stdout."""
    from service.app import create_app

    document = create_app().openapi()
    text = json.dumps(document, sort_keys=True, indent=2, ensure_ascii=False) + "\n"
    sys.stdout.buffer.write(text.encode("utf-8"))
    sys.stdout.flush()


@cli.command()
@click.option("--hostname", help="Celery node name (default: descent@<host>)")
def worker(hostname: str | None) -> None:
    """Run a Celery worker that trains jobs (DESCENT_RUNNER=celery; DESCENT_BROKER_URL)."""
    from service.runners.celery_worker import main as worker_main

    worker_main(["--hostname", hostname] if hostname else [])


@cli.command()
def migrate() -> None:
    """Create or upgrade the store's schema, then exit."""
    from service.settings import Settings
    from service.store import open_store

    open_store(Settings().database_url).close()
    click.echo("the store's schema is up to date")


register(cli)
cli.add_command(keys)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``descent`` console command; returns the exit status."""
    try:
        cli.main(args=list(argv) if argv is not None else None, prog_name="descent")
    except SystemExit as exc:
        if exc.code is None or isinstance(exc.code, int):
            return exc.code or 0
        click.echo(exc.code, err=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
