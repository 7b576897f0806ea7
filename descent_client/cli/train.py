"""``descent train``: submit a training job, then follow it with a live progress bar."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from descent_client.cli._live import OnInterrupt, follow, on_interrupt_option, report
from descent_client.cli._options import common, options
from descent_client.cli._output import handle_errors, output
from descent_client.cli._sources import SHORTHAND_HELP, generator_spec, upload
from descent_client.cli.jobs import job_rows
from engine.activations import ACTIVATIONS
from engine.models import MODEL_TYPES
from engine.optimizers import OPTIMIZERS

DEFAULT_MODEL: dict[str, Any] = {"type": "mlp", "hidden_layers": [16], "activation": "tanh"}


def hidden_layers(ctx: click.Context, param: click.Parameter, value: str | None) -> list[int] | None:
    if value is None:
        return None
    try:
        return [int(part) for part in value.split(",") if part.strip()]
    except ValueError:
        raise click.BadParameter(f"expected units separated by commas such as 16,16, got {value!r}") from None


def _set(body: dict[str, Any], path: str, value: Any) -> None:
    """``body["a"]["b"] = value`` for ``path`` ``"a.b"`` unless value is None."""
    if value is None:
        return
    *parents, leaf = path.split(".")
    node = body
    for key in parents:
        node = node.setdefault(key, {})
    node[leaf] = value


def training_config(
    config: Path | None, dataset: dict[str, Any] | None, given: dict[str, Any]
) -> dict[str, Any]:
    """The TrainingConfig: the --config file, then the dataset, then each option given."""
    body: dict[str, Any] = {}
    if config is not None:
        body = json.loads(config.read_text("utf-8"))
        if not isinstance(body, dict):
            raise click.BadParameter("must hold a JSON object (a TrainingConfig)", param_hint="--config")
    if dataset is not None:
        body.pop("dataset", None)
        body.pop("dataset_id", None)
        body.update(dataset)
    if "dataset" not in body and "dataset_id" not in body:
        raise click.UsageError(
            "give a DATASET (an id, a file or a generator shorthand) or a --config with one"
        )
    for path, value in given.items():
        _set(body, path, value)
    model = body.setdefault("model", {})
    if isinstance(model, dict) and "type" not in model:
        for key, value in DEFAULT_MODEL.items():
            model.setdefault(key, value)
    return body


@click.command("train")
@click.argument("dataset", required=False)
@click.option(
    "--config",
    "config",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A TrainingConfig JSON file; the options below override its fields.",
)
@click.option(
    "--model", type=click.Choice(sorted(MODEL_TYPES)), help="Model type (default: mlp, 16 tanh units)."
)
@click.option("--hidden", callback=hidden_layers, metavar="UNITS", help="mlp hidden layers, e.g. 16,16.")
@click.option(
    "--activation",
    type=click.Choice(sorted(set(ACTIVATIONS) - {"softmax"})),
    help="Activation of the hidden layers.",
)
@click.option("--optimizer", type=click.Choice(sorted(OPTIMIZERS)), help="Update rule (service default: gd).")
@click.option("--lr", "--learning-rate", "learning_rate", type=float, help="Learning rate η.")
@click.option("--momentum", type=float, help="Momentum coefficient (momentum, nesterov).")
@click.option("--epochs", type=click.IntRange(1), help="Passes over the training data.")
@click.option(
    "--batch-size", type=click.IntRange(1), help="Mini-batch size (not with gd, which is full-batch)."
)
@click.option("--l2", type=float, help="L2 penalty on the weights.")
@click.option("--validation", type=float, help="Share of samples held out for validation, e.g. 0.2.")
@click.option(
    "--early-stopping",
    type=click.IntRange(1),
    metavar="PATIENCE",
    help="Stop after PATIENCE epochs without improvement (and keep the best weights).",
)
@click.option("--standardize/--no-standardize", default=None, help="Standardise the features.")
@click.option("--seed", type=click.IntRange(0), help="Seed of the run (chosen by the service if omitted).")
@click.option("--dtype", type=click.Choice(["float32", "float64"]), help="Floating-point type.")
@click.option("--max-runtime", type=float, metavar="SECONDS", help="Time budget; the job fails past it.")
@click.option("--warm-start", metavar="MODEL_ID", help="Start from this model's weights.")
@click.option("--name", help="Name of the dataset created from a file or a generator.")
@click.option(
    "--label",
    metavar="COLUMN",
    help="A dataset file's label column: of a CSV, the column that holds the labels (default: the last);"
    " of an .npz or JSON file, the name of the label column in the dataset's CSV form (default: y).",
)
@click.option(
    "--idempotency-key", metavar="KEY", help="Submitting again with the same key returns the same job."
)
@click.option("--dry-run", is_flag=True, help="Print the resolved configuration; queue nothing.")
@click.option("--detach", is_flag=True, help="Submit and exit at once (status 0 once queued).")
@on_interrupt_option
@common
@handle_errors
def train(
    dataset: str | None,
    config: Path | None,
    name: str | None,
    label: str | None,
    idempotency_key: str | None,
    dry_run: bool,
    detach: bool,
    on_interrupt: OnInterrupt,
    **fields: Any,
) -> None:
    """Train a model on DATASET: a dataset id, a file (CSV, .npz, JSON) or a generator shorthand.

    Submits the job, then follows it with a live progress bar (epoch, losses, accuracies, ETA).
    Ctrl-C asks whether to cancel the job or detach from it. Exit status: 0 when the job succeeded;
    1 when it failed or was cancelled (its error type and detail are printed) or on any error; 130
    after detaching.
    """
    given = {
        "model.type": fields["model"],
        "model.hidden_layers": fields["hidden"],
        "model.activation": fields["activation"],
        "optimizer.name": fields["optimizer"],
        "optimizer.learning_rate": fields["learning_rate"],
        "optimizer.momentum": fields["momentum"],
        "epochs": fields["epochs"],
        "batch_size": fields["batch_size"],
        "l2": fields["l2"],
        "validation_fraction": fields["validation"],
        "early_stopping.patience": fields["early_stopping"],
        "standardize": fields["standardize"],
        "seed": fields["seed"],
        "dtype": fields["dtype"],
        "max_runtime_s": fields["max_runtime"],
        "warm_start_model_id": fields["warm_start"],
    }
    out = output()
    with options().client() as client:
        source: dict[str, Any] | None = None
        if dataset is not None:
            spec = None if Path(dataset).is_file() else generator_spec(dataset)
            if spec is not None:
                source = {"dataset": {"name": name or spec["kind"], "generator": spec}}
            elif Path(dataset).is_file():
                created = upload(client, dataset, name=name, label=label)
                out.message(f"dataset {created.id}: {created.n_samples} samples, {created.task}")
                source = {"dataset_id": created.id}
            else:
                source = {"dataset_id": dataset}
        body = training_config(config, source, given)
        if dry_run:
            resolved = client.jobs.dry_run(body)
            out.record(resolved, [(k, v) for k, v in resolved["config"].items() if v is not None], None)
            return
        job = client.jobs.create(body, idempotency_key=idempotency_key)
        out.message(f"job {job.id} {job.status}")
        if detach:
            out.record(job, job_rows(job), job.id)
            return
        job = follow(client, job, out, on_interrupt)
    report(out, job)


train.help = (train.help or "") + f"\n\nA generator shorthand is {SHORTHAND_HELP}."
