"""``descent keys``: create, list and revoke API keys, in the store of DESCENT_DATABASE_URL.

These commands work on the store directly (run them where the service's database is reachable);
the key of ``create`` is printed once, alone on the last line, and stored only as its SHA-256.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import click

from service.errors import DomainError


@contextmanager
def _store() -> Iterator[Any]:
    from service.logs import configure_logging
    from service.settings import Settings
    from service.store import open_store

    settings = Settings()
    # Key creation and revocation are audit events (logger descent.audit), on stderr as JSON lines.
    configure_logging(settings.log_level)
    store = open_store(settings.database_url)
    try:
        yield store
    except DomainError as exc:
        raise click.ClickException(exc.detail) from None
    finally:
        store.close()


@click.group()
def keys() -> None:
    """API keys (DESCENT_AUTH=keys): create, list, revoke."""


def _limit_options(command: Callable[..., Any]) -> Callable[..., Any]:
    options = [
        click.option(
            "--quota-jobs", type=click.IntRange(min=0), help="active jobs (default DESCENT_QUOTA_JOBS)"
        ),
        click.option(
            "--quota-stored-mb",
            type=click.FloatRange(min=0),
            help="stored MiB (default DESCENT_QUOTA_STORED_MB)",
        ),
        click.option(
            "--quota-datasets", type=click.IntRange(min=0), help="datasets (default DESCENT_QUOTA_DATASETS)"
        ),
        click.option(
            "--quota-models", type=click.IntRange(min=0), help="models (default DESCENT_QUOTA_MODELS)"
        ),
        click.option(
            "--rate-limit",
            help="how fast the key's token bucket refills, e.g. 20/second (default DESCENT_RATE_LIMIT; '' "
            "for none)",
        ),
        click.option(
            "--rate-limit-burst",
            type=click.IntRange(min=0),
            help="tokens the bucket holds, the requests the key may make at once (default: the N of "
            "--rate-limit if given, else DESCENT_RATE_LIMIT_BURST)",
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command


@keys.command("create")
@click.option("--owner", required=True, help="the owner (tenant) the key acts as")
@click.option("--admin", is_flag=True, help="the key sees and manages every owner's resources")
@click.option("--note", help="a note shown by `descent keys list`")
@_limit_options
def create_command(
    owner: str,
    admin: bool,
    note: str | None,
    quota_jobs: int | None,
    quota_stored_mb: float | None,
    quota_datasets: int | None,
    quota_models: int | None,
    rate_limit: str | None,
    rate_limit_burst: int | None,
) -> None:
    """Create a key; it is printed once, alone on the last line: keep it, it cannot be shown again."""
    from service.services import identity

    limits = {
        "jobs": quota_jobs,
        "stored_mb": quota_stored_mb,
        "datasets": quota_datasets,
        "models": quota_models,
        "rate_limit": rate_limit,
        "rate_limit_burst": rate_limit_burst,
    }
    with _store() as store:
        new = identity.create(store, owner=owner, admin=admin, note=note, limits=limits)
    record = new.record
    click.echo(
        f"created key {record.id} for owner {record.owner}" + (" (admin)" if record.admin else ""), err=True
    )
    if record.limits:
        click.echo(f"limits: {json.dumps(record.limits)}", err=True)
    click.echo("the key (shown this once; send it as Authorization: Bearer <key>):", err=True)
    click.echo(new.key)


@keys.command("list")
@click.option("--owner", help="only this owner's keys")
@click.option("--json", "as_json", is_flag=True, help="one JSON array (never the keys themselves)")
def list_command(owner: str | None, as_json: bool) -> None:
    """List keys: id, owner, admin, created, revoked, note (never the key)."""
    from service.services import identity

    with _store() as store:
        documents = identity.list_documents(store, owner)
    if as_json:
        click.echo(json.dumps(documents, indent=2))
        return
    click.echo(f"{'ID':<28} {'OWNER':<16} {'ADMIN':<5} {'CREATED':<20} {'REVOKED':<20} NOTE")
    for d in documents:
        created = d["created_at"][:19]
        revoked = (d["revoked_at"] or "-")[:19]
        admin = "yes" if d["admin"] else "no"
        click.echo(f"{d['id']:<28} {d['owner']:<16} {admin:<5} {created:<20} {revoked:<20} {d['note'] or ''}")


@keys.command("revoke")
@click.argument("key_id")
def revoke_command(key_id: str) -> None:
    """Revoke a key by its id (key_...): it stops working within DESCENT_KEY_CACHE_S."""
    from service.services import identity

    with _store() as store:
        record = identity.revoke(store, key_id)
    click.echo(f"revoked key {record.id} of owner {record.owner}")


@keys.command("generate")
def generate_command() -> None:
    """Print a new key, stored nowhere: for DESCENT_BOOTSTRAP_KEY (an admin key recorded at start-up)."""
    from service.services import identity

    click.echo(identity.generate()[1])
