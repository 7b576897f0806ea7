"""``descent models list|show|predict|export|import|delete``."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from descent_client.cli._options import common, options
from descent_client.cli._output import handle_errors, output, text
from descent_client.cli.datasets import deleted

if TYPE_CHECKING:
    from descent_client import Model


def layers_text(model: Model) -> str:
    """``2 → 16 tanh → 1 sigmoid``."""
    layers = [f"{layer.units} {layer.activation}" for layer in model.architecture.layers]
    return " → ".join([str(model.n_features), *layers])


def model_rows(model: Model) -> list[tuple[str, Any]]:
    rows: list[tuple[str, Any]] = [
        ("id", model.id),
        ("type", model.architecture.type),
        ("layers", layers_text(model)),
        ("loss", model.architecture.loss),
        ("task", model.task),
        ("classes", model.classes),
        ("parameters", model.n_parameters),
        ("standardized", model.standardization is not None),
        ("job", model.job_id),
        *((f"metric {k}", v) for k, v in model.metrics.items()),
        ("sha256", model.sha256),
        ("created", model.created_at),
    ]
    if model.parameters is not None:
        rows += [(f"{name} ({model.dtype})", value) for name, value in model.parameters.items()]
    return [(k, v) for k, v in rows if v is not None]


@click.group("models")
@common
def models() -> None:
    """List, show, predict with, export, import and delete models."""


@models.command("list")
@click.option("--limit", type=click.IntRange(1, 500), default=50, show_default=True, help="Models per page.")
@click.option("--cursor", help="Start at this page (the next_cursor of the previous one).")
@common
@handle_errors
def list_(limit: int, cursor: str | None) -> None:
    """List models, newest first."""
    with options().client() as client:
        page = client.models.list(limit=limit, cursor=cursor)
    header = ("id", "type", "layers", "task", "parameters", "job", "created")
    rows = [
        (m.id, m.architecture.type, layers_text(m), m.task, m.n_parameters, m.job_id, m.created_at)
        for m in page.items
    ]
    out = output()
    out.rows(
        header,
        rows,
        document={"items": page.items, "next_cursor": page.next_cursor},
        ids=[m.id for m in page.items],
    )
    if page.next_cursor:
        out.message(f"more: --cursor {page.next_cursor}")


@models.command("show")
@click.argument("model_id")
@click.option("--parameters", is_flag=True, help="Include the weights and biases.")
@common
@handle_errors
def show(model_id: str, parameters: bool) -> None:
    """Show a model: architecture, task, classes, metrics and the job that trained it."""
    with options().client() as client:
        model = client.models.get(model_id, parameters=parameters)
    output().record(model, model_rows(model), model.id)


@models.command("predict")
@click.argument("model_id")
@click.argument("input", required=False, metavar="[INPUT]")
@click.option(
    "--dataset", "dataset_id", metavar="ID", help="Predict on a stored dataset's X instead of INPUT."
)
@common
@handle_errors
def predict(model_id: str, input: str | None, dataset_id: str | None) -> None:
    """Predict with a model. INPUT holds rows of X: a CSV file (an optional header row), .npy, .npz
    (array X) or JSON ({"X": [[...]]} or a list of rows); '-' reads JSON or CSV from stdin."""
    from descent_client._arrays import read_matrix

    if (input is None) == (dataset_id is None):
        raise click.UsageError("give either INPUT or --dataset")
    X = None
    if input is not None:
        stdin = sys.stdin.buffer.read() if input == "-" else None
        X = read_matrix(input, stdin=stdin)
    with options().client() as client:
        result = client.models.predict(model_id, X, dataset_id=dataset_id)
    probabilities = result.probabilities
    header = ["row", "prediction"]
    if probabilities is not None and probabilities.ndim == 2:
        header += [f"p({text(c)})" for c in result.classes or range(probabilities.shape[1])]
    elif probabilities is not None:
        positive = result.classes[1] if result.classes else 1
        header.append(f"p({text(positive)})")
    rows: list[list[Any]] = []
    for i, prediction in enumerate(result.predictions.tolist()):
        row: list[Any] = [i, prediction]
        if probabilities is not None:
            row += list(probabilities[i].tolist()) if probabilities.ndim == 2 else [probabilities[i].item()]
        rows.append(row)
    output().rows(header, rows, document=result, ids=[text(p) for p in result.predictions.tolist()])


@models.command("export")
@click.argument("model_id")
@click.option(
    "--format",
    "format_",
    type=click.Choice(["json", "npz"]),
    default="json",
    show_default=True,
    help="json: one document; npz: a NumPy archive with the arrays in their dtype.",
)
@click.option(
    "--file",
    "-f",
    "path",
    type=click.Path(dir_okay=False, allow_dash=True),
    help="Where to write it ('-' for stdout; default: MODEL_ID.FORMAT).",
)
@common
@handle_errors
def export(model_id: str, format_: str, path: str | None) -> None:
    """Export a model (to import elsewhere with `descent models import`)."""
    with options().client() as client:
        content = client.models.export(model_id, format="npz" if format_ == "npz" else "json")
    if path == "-":
        sys.stdout.buffer.write(content)
        sys.stdout.flush()
        return
    target = Path(path or f"{model_id}.{format_}")
    target.write_bytes(content)
    out = output()
    summary = {"model_id": model_id, "format": format_, "path": str(target), "bytes": len(content)}
    out.record(summary, list(summary.items()), str(target))


@models.command("import")
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@common
@handle_errors
def import_(path: str) -> None:
    """Import a model exported as JSON or .npz; it gets a new id and the same sha256."""
    with options().client() as client:
        model = client.models.import_(Path(path))
    output().record(model, model_rows(model), model.id)


@models.command("delete")
@click.argument("model_ids", nargs=-1, required=True)
@common
@handle_errors
def delete(model_ids: tuple[str, ...]) -> None:
    """Delete models (the jobs that trained them keep their history)."""
    with options().client() as client:
        for model_id in model_ids:
            client.models.delete(model_id)
    deleted(list(model_ids))
