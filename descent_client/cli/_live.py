"""Following a job on the command line: a live progress bar on a terminal, lines elsewhere, and Ctrl-C
asking whether to cancel the job or detach from it."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Literal

import click
from rich.progress import BarColumn, Progress, ProgressColumn, Task, TextColumn
from rich.prompt import Prompt
from rich.text import Text

from descent_client.cli._options import EXIT_DETACHED, EXIT_FAILED
from descent_client.cli._output import Output, text
from descent_client.errors import Conflict
from descent_client.events import EndUpdate, EpochUpdate, StatusUpdate, Update

if TYPE_CHECKING:
    from descent_client import Client, Job

OnInterrupt = Literal["ask", "cancel", "detach"]
on_interrupt_option = click.option(
    "--on-interrupt",
    type=click.Choice(["ask", "cancel", "detach"]),
    default="ask",
    show_default=True,
    help="What Ctrl-C does: ask (on a terminal; detach otherwise), cancel the job, or detach from it.",
)


def clock(seconds: float | None) -> str:
    """``1:02:03`` or ``02:03``; ``-:--`` when unknown."""
    if seconds is None:
        return "-:--"
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"


class _EtaColumn(ProgressColumn):
    """The service's estimate of the time left (it knows the pace of the run, retries included)."""

    def render(self, task: Task) -> Text:
        if task.finished:
            return Text(f"done in {clock(task.fields.get('elapsed'))}", style="green")
        return Text(f"ETA {clock(task.fields.get('eta'))}", style="cyan")


def metrics_text(update: EpochUpdate) -> str:
    m = update.metrics
    parts = [f"loss {text(m.train_loss)}"]
    if m.val_loss is not None:
        parts.append(f"val {text(m.val_loss)}")
    if m.train_accuracy is not None:
        parts.append(f"acc {m.train_accuracy:.3f}")
    if m.val_accuracy is not None:
        parts.append(f"val acc {m.val_accuracy:.3f}")
    return "  ".join(parts)


class _Display:
    """The progress bar of one job (drawn only on a terminal), and status lines."""

    def __init__(self, out: Output, job: Job) -> None:
        self.out = out
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("epoch {task.completed:.0f}/{task.total:.0f}"),
            TextColumn("{task.fields[metrics]}"),
            _EtaColumn(),
            console=out.stderr,
            disable=not out.interactive,
            transient=False,
        )
        total = job.progress.total_epochs or 1
        self.task = self.progress.add_task(
            f"{job.id} {job.status}",
            total=total,
            completed=job.progress.epoch,
            metrics="",
            eta=None,
            elapsed=None,
        )
        self.job_id = job.id

    def show(self, update: Update) -> None:
        if isinstance(update, EpochUpdate):
            self.progress.update(
                self.task,
                completed=update.epoch,
                total=update.total_epochs or None,
                metrics=metrics_text(update),
                eta=update.eta_s,
                elapsed=update.elapsed_s,
            )
        elif isinstance(update, StatusUpdate):
            self.progress.update(self.task, description=f"{self.job_id} {update.status}")
            reason = f" ({update.reason})" if update.reason else ""
            self.line(f"{self.job_id}: {update.status}, attempt {update.attempt}{reason}")
        elif isinstance(update, EndUpdate):
            self.progress.update(self.task, description=f"{self.job_id} {update.status}")

    def line(self, message: str) -> None:
        """A status line: printed above the bar on a terminal, alone elsewhere."""
        if self.out.interactive:
            self.progress.console.print(message)
        else:
            self.out.message(message)


def _decide(out: Output, on_interrupt: OnInterrupt) -> OnInterrupt | Literal["follow"]:
    if on_interrupt != "ask":
        return on_interrupt
    if not (out.stderr.is_terminal and sys.stdin.isatty()):
        return "detach"
    try:
        answer = Prompt.ask(
            Text("Interrupted: [c]ancel the job, [d]etach (it goes on), or [f]ollow on?"),
            choices=["c", "d", "f"],
            default="c",
            console=out.stderr,
        )
    except (KeyboardInterrupt, EOFError):
        return "detach"
    return {"c": "cancel", "d": "detach", "f": "follow"}[answer]  # type: ignore[return-value]


def follow(client: Client, job: Job, out: Output, on_interrupt: OnInterrupt) -> Job:
    """Follow ``job`` to its end and return its final state; exits 130 when the user detaches."""
    display = _Display(out, job)
    updates = client.jobs.follow(job.id)
    with display.progress:
        while True:
            try:
                for update in updates:
                    display.show(update)
                break
            except KeyboardInterrupt:
                display.progress.stop()
                choice = _decide(out, on_interrupt)
                if choice == "detach":
                    out.message(f"detached: {job.id} goes on; follow it with `descent jobs follow {job.id}`")
                    if out.quiet or out.format != "table":
                        click.echo(job.id)
                    raise SystemExit(EXIT_DETACHED) from None
                if choice == "cancel":
                    try:
                        client.jobs.cancel(job.id)
                        display.line(f"{job.id}: cancel requested")
                    except Conflict:
                        pass  # it ended meanwhile
                display.progress.start()
    return client.jobs.get(job.id)


def report(out: Output, job: Job) -> None:
    """The final state of a followed job on stdout; exit status 1 unless it succeeded."""
    rows = [
        ("job", job.id),
        ("status", job.status),
        ("epochs", f"{job.progress.epoch}/{job.progress.total_epochs}"),
        ("train loss", job.metrics.train_loss),
        ("val loss", job.metrics.val_loss),
        ("train accuracy", job.metrics.train_accuracy),
        ("val accuracy", job.metrics.val_accuracy),
        ("best epoch", job.best.epoch),
        ("model", job.model_id),
    ]
    if job.error is not None:
        rows.append(("error", f"{job.error.type}: {job.error.detail}"))
    out.record(
        job, [(k, v) for k, v in rows if v is not None], job.model_id if job.status == "succeeded" else None
    )
    if job.status != "succeeded":
        what = f": {job.error.type}: {job.error.detail}" if job.error is not None else ""
        if out.format == "json":
            raise SystemExit(EXIT_FAILED)
        out.fail(f"job {job.id} {job.status}{what}")
