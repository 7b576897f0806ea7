"""How commands print: tables for people (colour only on a terminal), JSON for scripts, CSV for data,
ids alone with ``--quiet``; messages and progress go to stderr so that stdout holds only the result."""

from __future__ import annotations

import csv
import functools
import json
import os
import sys
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any, NoReturn, ParamSpec, TypeVar

import click
from pydantic import BaseModel
from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from descent_client.cli._options import EXIT_FAILED, Options, options

P = ParamSpec("P")
R = TypeVar("R")


def jsonable(value: Any) -> Any:
    """Pydantic models, NumPy arrays and datetimes as plain JSON values."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value


def text(value: Any) -> str:
    """A cell: numbers shortened, None as an empty cell, lists joined."""
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, list | tuple):
        return ",".join(text(v) for v in value)
    return str(value)


def csv_cell(value: Any) -> str:
    """A CSV cell: numbers at full precision (the data, not a view of it)."""
    if isinstance(value, float):
        return repr(value)
    return text(value)


class Output:
    """The printer of the running command, following ``--output`` and ``--quiet``."""

    def __init__(self, opts: Options) -> None:
        self.format = opts.output
        self.quiet = opts.quiet
        self.stdout = Console(file=sys.stdout, highlight=False, markup=False, width=_width(sys.stdout))
        self.stderr = Console(file=sys.stderr, highlight=False, markup=False, width=_width(sys.stderr))

    @property
    def for_people(self) -> bool:
        """Tables and messages are wanted (not JSON or CSV, not quiet)."""
        return self.format == "table" and not self.quiet

    @property
    def interactive(self) -> bool:
        """Whether progress bars may be drawn: on a terminal, for people."""
        return self.for_people and self.stderr.is_terminal

    def message(self, message: str) -> None:
        """An informational line on stderr (not with --quiet, --output json or csv)."""
        if self.for_people:
            self.stderr.print(message)

    def json(self, value: Any) -> None:
        click.echo(json.dumps(jsonable(value), indent=2, ensure_ascii=False))

    def ids(self, ids: Iterable[str | None]) -> None:
        for value in ids:
            if value:
                click.echo(value)

    def record(
        self, value: BaseModel | dict[str, Any], rows: Sequence[tuple[str, Any]], rid: str | None
    ) -> None:
        """One resource: JSON (all of it), its id (quiet), or a two-column table of ``rows``."""
        if self.format == "json":
            self.json(value)
        elif self.quiet:
            self.ids([rid])
        else:
            table = Table(box=box.SIMPLE, show_header=False, pad_edge=False, show_edge=False)
            table.add_column(style="bold")
            table.add_column(overflow="fold")
            for key, cell in rows:
                table.add_row(key, text(cell))
            self.stdout.print(table)

    def rows(
        self,
        header: Sequence[str],
        rows: Sequence[Sequence[Any]],
        *,
        document: Any,
        ids: Sequence[str] | None = None,
        title: str | None = None,
    ) -> None:
        """A list: JSON (``document``), CSV, ids (quiet) or a table."""
        if self.format == "json":
            self.json(document)
        elif self.format == "csv":
            writer = csv.writer(sys.stdout, lineterminator="\n")
            writer.writerow(header)
            writer.writerows([[csv_cell(cell) for cell in row] for row in rows])
        elif self.quiet:
            self.ids(ids or [])
        else:
            table = Table(*header, box=box.SIMPLE_HEAD, title=title, pad_edge=False, show_edge=False)
            for row in rows:
                table.add_row(*(text(cell) for cell in row))
            self.stdout.print(table)

    def fail(
        self, message: str, *, problem: dict[str, Any] | None = None, code: int = EXIT_FAILED
    ) -> NoReturn:
        """Report an error on stderr (a JSON document with --output json) and exit with ``code``."""
        if self.format == "json":
            click.echo(json.dumps({"error": problem or {"detail": message}}, ensure_ascii=False), err=True)
        else:
            self.stderr.print(Text("error: ", style="bold red") + Text(message))
        raise SystemExit(code)


def _width(stream: Any) -> int | None:
    """Off a terminal, lines as wide as they need (up to 400 columns) rather than 80."""
    isatty = getattr(stream, "isatty", None)
    if isatty is not None and isatty():
        return None
    return int(os.environ.get("COLUMNS", "0")) or 400


def output() -> Output:
    return Output(options())


def handle_errors(command: Callable[P, R]) -> Callable[P, R]:
    """Turn the client's exceptions (and bad files or values) into an error message and exit status 1."""
    from descent_client.errors import APIError, DescentError

    @functools.wraps(command)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except APIError as exc:
            output().fail(describe(exc), problem=exc.problem)
        except (DescentError, OSError, ValueError) as exc:
            output().fail(str(exc) or type(exc).__name__)

    return run


def describe(exc: Any) -> str:
    """``not-found (404): job 'x' not found``, with the field errors of a validation failure."""
    lines = [f"{exc.slug} ({exc.status}): {exc.detail}"]
    if len(exc.errors) > 1:
        lines += [f"  {'.'.join(map(str, e.get('loc', [])))}: {e.get('msg')}" for e in exc.errors]
    return "\n".join(lines)
