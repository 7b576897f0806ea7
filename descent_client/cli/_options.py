"""Options every client command takes (``--url``, ``--api-key``, ``--output``, ``--quiet``), the client
they configure, and the one place that turns errors into a message and an exit status."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, ParamSpec, TypeVar

import click

if TYPE_CHECKING:
    from descent_client import Client

P = ParamSpec("P")
R = TypeVar("R")
OutputFormat = Literal["table", "json", "csv"]
_KEY = "descent.options"

# Exit statuses: 0 success (a followed job succeeded); 1 an error, or a job that failed or was cancelled;
# 2 a usage error (click's); 130 detached after Ctrl-C while the job goes on.
EXIT_FAILED = 1
EXIT_DETACHED = 130


@dataclass
class Options:
    """What the common options say; options given after the subcommand win over those before it."""

    url: str | None = None
    api_key: str | None = None
    output: OutputFormat = "table"
    quiet: bool = False

    def client(self) -> Client:
        from descent_client import Client

        return Client(self.url, api_key=self.api_key)


def options(ctx: click.Context | None = None) -> Options:
    """The options of the running command."""
    root = (ctx or click.get_current_context()).find_root()
    found = root.meta.get(_KEY)
    if not isinstance(found, Options):
        found = root.meta[_KEY] = Options()
    return found


def _setter(name: str) -> Callable[[click.Context, click.Parameter, Any], None]:
    def store(ctx: click.Context, param: click.Parameter, value: Any) -> None:
        if value is not None and value is not False:
            setattr(options(ctx), name, value)

    return store


_COMMON = (
    click.option(
        "--url",
        metavar="URL",
        expose_value=False,
        callback=_setter("url"),
        help="The service's base URL (default: $DESCENT_URL, else http://127.0.0.1:8000).",
    ),
    click.option(
        "--api-key",
        metavar="KEY",
        expose_value=False,
        callback=_setter("api_key"),
        help="API key, sent as a Bearer token (default: $DESCENT_API_KEY).",
    ),
    click.option(
        "--output",
        "-o",
        type=click.Choice(["table", "json", "csv"]),
        expose_value=False,
        callback=_setter("output"),
        help="table (default) for people, json for scripts, csv for lists, metrics and predictions.",
    ),
    click.option(
        "--quiet",
        "-q",
        is_flag=True,
        default=False,
        expose_value=False,
        callback=_setter("quiet"),
        help="Print only ids (and errors): no tables, messages or progress bars.",
    ),
)


def common(command: Callable[P, R]) -> Callable[P, R]:
    """Add the common options to a command (or group)."""
    for option in reversed(_COMMON):
        command = option(command)
    return command
