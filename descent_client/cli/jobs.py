"""``descent jobs list|show|follow|cancel|metrics``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from descent_client.cli._live import OnInterrupt, follow, on_interrupt_option, report
from descent_client.cli._options import common, options
from descent_client.cli._output import handle_errors, output

if TYPE_CHECKING:
    from descent_client import Job

STATUSES = ("queued", "running", "cancelling", "succeeded", "failed", "cancelled")


def describe_model(config: dict[str, Any]) -> str:
    """``mlp [16, 16] tanh`` or ``logistic_regression``."""
    model = config.get("model") or {}
    kind = str(model.get("type", "?"))
    if model.get("hidden_layers"):
        kind += f" {model['hidden_layers']} {model.get('activation', '')}".rstrip()
    return kind


def job_rows(job: Job) -> list[tuple[str, Any]]:
    optimizer = job.config.get("optimizer") or {}
    rows: list[tuple[str, Any]] = [
        ("id", job.id),
        ("status", job.status),
        ("dataset", job.dataset_id),
        ("model", describe_model(job.config)),
        ("optimizer", f"{optimizer.get('name')} lr={optimizer.get('learning_rate')}"),
        ("epochs", f"{job.progress.epoch}/{job.progress.total_epochs}"),
        ("batch size", job.config.get("batch_size") or "full batch"),
        ("seed", job.config.get("seed")),
        ("train loss", job.metrics.train_loss),
        ("val loss", job.metrics.val_loss),
        ("train accuracy", job.metrics.train_accuracy),
        ("val accuracy", job.metrics.val_accuracy),
        ("best epoch", job.best.epoch),
        ("attempt", job.attempt),
        ("queue position", job.queue_position),
        ("created", job.created_at),
        ("started", job.started_at),
        ("finished", job.finished_at),
        ("model id", job.model_id),
    ]
    if job.error is not None:
        rows.append(("error", f"{job.error.type}: {job.error.detail}"))
    return [(k, v) for k, v in rows if v is not None]


@click.group("jobs")
@common
def jobs() -> None:
    """List, show, follow and cancel training jobs; print their metric history."""


@jobs.command("list")
@click.option("--status", type=click.Choice(STATUSES), help="Only jobs in this state.")
@click.option("--limit", type=click.IntRange(1, 500), default=50, show_default=True, help="Jobs per page.")
@click.option("--cursor", help="Start at this page (the next_cursor of the previous one).")
@common
@handle_errors
def list_(status: str | None, limit: int, cursor: str | None) -> None:
    """List jobs, newest first."""
    with options().client() as client:
        page = client.jobs.list(status=status, limit=limit, cursor=cursor)
    header = ("id", "status", "model", "epoch", "train loss", "val loss", "model id", "created")
    rows = [
        (
            j.id,
            j.status,
            describe_model(j.config),
            f"{j.progress.epoch}/{j.progress.total_epochs}",
            j.metrics.train_loss,
            j.metrics.val_loss,
            j.model_id,
            j.created_at,
        )
        for j in page.items
    ]
    out = output()
    out.rows(
        header,
        rows,
        document={"items": page.items, "next_cursor": page.next_cursor},
        ids=[j.id for j in page.items],
    )
    if page.next_cursor:
        out.message(f"more: --cursor {page.next_cursor}")


@jobs.command("show")
@click.argument("job_id")
@common
@handle_errors
def show(job_id: str) -> None:
    """Show a job: state, configuration, progress, latest metrics, best epoch, error and model."""
    with options().client() as client:
        job = client.jobs.get(job_id)
    output().record(job, job_rows(job), job.id)


@jobs.command("follow")
@click.argument("job_id")
@on_interrupt_option
@common
@handle_errors
def follow_(job_id: str, on_interrupt: OnInterrupt) -> None:
    """Follow a job to its end with a live progress bar; exit 0 only when it succeeds."""
    out = output()
    with options().client() as client:
        job = follow(client, client.jobs.get(job_id), out, on_interrupt)
    report(out, job)


@jobs.command("cancel")
@click.argument("job_id")
@click.option("--wait", is_flag=True, help="Wait until the job has stopped.")
@common
@handle_errors
def cancel(job_id: str, wait: bool) -> None:
    """Cancel a job: a queued one at once, a running one after its current mini-batch (its best
    weights so far are kept as a model). Refused (409) when the job has already ended."""
    with options().client() as client:
        job = client.jobs.cancel(job_id)
        if wait:
            job = client.jobs.wait(job_id, check=False)
    output().record(job, job_rows(job), job.id)


@jobs.command("metrics")
@click.argument("job_id")
@click.option("--since-epoch", type=click.IntRange(0), help="Only the epochs after this one.")
@click.option("--max-points", type=click.IntRange(2, 100_000), help="Downsample evenly to this many epochs.")
@common
@handle_errors
def metrics(job_id: str, since_epoch: int | None, max_points: int | None) -> None:
    """Print a job's per-epoch history: a table, CSV (-o csv) or JSON (-o json)."""
    with options().client() as client:
        history = client.jobs.metrics(job_id, since_epoch=since_epoch, max_points=max_points)
    names = ["train_loss", "val_loss", "train_accuracy", "val_accuracy"]
    columns = [name for name in names if getattr(history, name) is not None]
    rows = [
        [epoch, *(getattr(history, name)[i] for name in columns)] for i, epoch in enumerate(history.epochs)
    ]
    output().rows(["epoch", *columns], rows, document=history, ids=[str(e) for e in history.epochs])
