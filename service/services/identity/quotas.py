"""Quotas per owner: active jobs, stored bytes (datasets and models), datasets and models.

The defaults come from settings (DESCENT_QUOTA_*), a key's limits override them; they apply to keys
(DESCENT_AUTH=keys), not to the single user of DESCENT_AUTH=none. Creations check the
room they need before anything is stored (a job's under the queue's lock, in the store); a trained
model is stored whatever the quotas say, since its job was admitted, and counts from then on.
"""

from __future__ import annotations

from typing import Any

from service.errors import QuotaExceeded
from service.settings import MiB, Settings
from service.store import Store, Usage, get_usage

# Each quota and the setting of its default.
QUOTA_SETTINGS = {
    "jobs": "DESCENT_QUOTA_JOBS",
    "stored_bytes": "DESCENT_QUOTA_STORED_MB",
    "datasets": "DESCENT_QUOTA_DATASETS",
    "models": "DESCENT_QUOTA_MODELS",
}


def quotas(settings: Settings) -> dict[str, int]:
    """The quotas of ``settings.owner`` (settings as its principal sees them)."""
    return {
        "jobs": settings.quota_jobs,
        "stored_bytes": int(settings.quota_stored_mb * MiB),
        "datasets": settings.quota_datasets,
        "models": settings.quota_models,
    }


def enforced(settings: Settings) -> bool:
    """Whether quotas apply: with DESCENT_AUTH=keys."""
    return settings.auth == "keys"


def job_quota(settings: Settings) -> int | None:
    """The active jobs ``settings.owner`` may have, or None when quotas do not apply."""
    return settings.quota_jobs if enforced(settings) else None


def estimate_stored_bytes(*arrays: Any) -> int:
    """The bytes some arrays will take once stored (their raw size; ``.npz`` adds a few hundred)."""
    return sum(int(getattr(a, "nbytes", 0)) for a in arrays)


def check_room(
    store: Store, settings: Settings, *, datasets: int = 0, models: int = 0, nbytes: int = 0
) -> None:
    """Raise ``QuotaExceeded`` (403) when storing this much more would pass one of the owner's quotas."""
    if not enforced(settings):
        return
    usage = get_usage(store, settings.owner)
    limits = quotas(settings)
    for name, used, adding, unit in (
        ("datasets", usage.datasets, datasets, ""),
        ("models", usage.models, models, ""),
        ("stored_bytes", usage.stored_bytes, nbytes, "bytes"),
    ):
        if adding and used + adding > limits[name]:
            raise QuotaExceeded(name, usage=used, limit=limits[name], adding=adding, unit=unit)


def usage_document(store: Store, settings: Settings) -> dict[str, Any]:
    """``{"owner", "usage": {...}, "quotas": {...} or None}`` of ``settings.owner``."""
    usage: Usage = get_usage(store, settings.owner)
    limits = quotas(settings) if enforced(settings) else None
    return {"owner": settings.owner, "usage": usage._asdict(), "quotas": limits}
