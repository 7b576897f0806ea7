"""``descent datasets create|list|show|delete``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from descent_client.cli._options import common, options
from descent_client.cli._output import handle_errors, output
from descent_client.cli._sources import LABEL_HELP, SHORTHAND_HELP, upload

if TYPE_CHECKING:
    from descent_client import Dataset


def dataset_rows(dataset: Dataset) -> list[tuple[str, Any]]:
    rows: list[tuple[str, Any]] = [
        ("id", dataset.id),
        ("name", dataset.name),
        ("task", dataset.task),
        ("samples", dataset.n_samples),
        ("features", dataset.n_features),
        ("classes", dataset.classes),
        ("class counts", dataset.class_counts),
        ("source", dataset.source.get("kind")),
        ("sha256", dataset.sha256),
        ("created", dataset.created_at),
    ]
    return [(k, v) for k, v in rows if v is not None]


@click.group("datasets")
@common
def datasets() -> None:
    """Create, list, show and delete datasets."""


@datasets.command("create")
@click.argument("source")
@click.option("--name", help="The dataset's name (default: the file's name, or KIND-N for a generator).")
@click.option("--label", metavar="COLUMN", help=LABEL_HELP)
@click.option(
    "--task",
    type=click.Choice(["binary", "multiclass", "regression"]),
    help="Override the inferred task (or a generator's).",
)
@click.option("--idempotency-key", metavar="KEY", help="Sending the same key again returns the same dataset.")
@common
@handle_errors
def create(
    source: str, name: str | None, label: str | None, task: str | None, idempotency_key: str | None
) -> None:
    """Create a dataset from SOURCE: a CSV file (header row), an .npz file (arrays X and y), a JSON file
    ({"name", "X", "y"} or {"name", "generator"}), or a generator shorthand such as 'xor:n=400,seed=1'."""
    with options().client() as client:
        dataset = upload(client, source, name=name, label=label, task=task, key=idempotency_key)
    output().record(dataset, dataset_rows(dataset), dataset.id)


create.help = (create.help or "") + f"\n\nSOURCE may be {SHORTHAND_HELP}."


@datasets.command("list")
@click.option(
    "--limit", type=click.IntRange(1, 500), default=50, show_default=True, help="Datasets per page."
)
@click.option("--cursor", help="Start at this page (the next_cursor of the previous one).")
@common
@handle_errors
def list_(limit: int, cursor: str | None) -> None:
    """List datasets, newest first."""
    with options().client() as client:
        page = client.datasets.list(limit=limit, cursor=cursor)
    header = ("id", "name", "task", "samples", "features", "classes", "created")
    rows = [(d.id, d.name, d.task, d.n_samples, d.n_features, d.classes, d.created_at) for d in page.items]
    document = {"items": page.items, "next_cursor": page.next_cursor}
    out = output()
    out.rows(header, rows, document=document, ids=[d.id for d in page.items])
    if page.next_cursor:
        out.message(f"more: --cursor {page.next_cursor}")


@datasets.command("show")
@click.argument("dataset_id")
@common
@handle_errors
def show(dataset_id: str) -> None:
    """Show a dataset: size, task, classes and their counts, origin, hash."""
    with options().client() as client:
        dataset = client.datasets.get(dataset_id)
    output().record(dataset, dataset_rows(dataset), dataset.id)


@datasets.command("delete")
@click.argument("dataset_ids", nargs=-1, required=True)
@common
@handle_errors
def delete(dataset_ids: tuple[str, ...]) -> None:
    """Delete datasets (refused while a queued or running job uses one)."""
    with options().client() as client:
        for dataset_id in dataset_ids:
            client.datasets.delete(dataset_id)
    deleted(list(dataset_ids))


def deleted(ids: list[str]) -> None:
    out = output()
    if out.format == "json":
        out.json({"deleted": ids})
    elif out.quiet:
        out.ids(ids)
    else:
        for resource_id in ids:
            click.echo(f"deleted {resource_id}")
