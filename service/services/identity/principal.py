"""Who a request acts as: an owner, through a key (or none), perhaps an administrator."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from service.errors import Forbidden
from service.settings import Settings
from service.store import KeyRecord

# Limits a key may override, each with the setting it overrides (stored_mb: DESCENT_QUOTA_STORED_MB...).
LIMIT_SETTINGS = {
    "jobs": "quota_jobs",
    "stored_mb": "quota_stored_mb",
    "datasets": "quota_datasets",
    "models": "quota_models",
    "rate_limit": "rate_limit",
    "rate_limit_burst": "rate_limit_burst",
}


@dataclass(frozen=True, slots=True)
class Principal:
    """The identity of a request.

    Attributes
    ----------
    owner : str
        The owner its resources are created under (and, unless it is an admin, the only one it sees).
    key_id : str or None
        The key's id (``key_...``; never the key), None with DESCENT_AUTH=none.
    admin : bool
        An admin sees every owner's resources (``?owner=`` narrows a list to one owner).
    settings : Settings
        The settings as this principal sees them: ``owner`` its owner, the quotas and rate limit with
        the key's overrides.
    """

    owner: str
    key_id: str | None
    admin: bool
    settings: Settings = field(repr=False)

    def read_owner(self, owner_filter: str | None = None) -> str | None:
        """The owner whose resources this principal reads: its own; for an admin, ``owner_filter`` or
        every owner (None).

        Raises
        ------
        Forbidden
            When a key that is not an admin's asks for another owner's resources.
        """
        if self.admin:
            return owner_filter
        if owner_filter is not None and owner_filter != self.owner:
            raise Forbidden("only an admin key may list another owner's resources (query parameter owner)")
        return self.owner


def _scoped(settings: Settings, owner: str, limits: Mapping[str, Any]) -> Settings:
    overrides: dict[str, Any] = {"owner": owner}
    for name, value in limits.items():
        if name in LIMIT_SETTINGS:
            overrides[LIMIT_SETTINGS[name]] = value
    if "rate_limit" in limits and "rate_limit_burst" not in limits:
        # A key's own rate comes with its own burst (its N), not the one sized for DESCENT_RATE_LIMIT.
        overrides["rate_limit_burst"] = 0
    return settings.model_copy(update=overrides)


def anonymous(settings: Settings) -> Principal:
    """The single user of DESCENT_AUTH=none: DESCENT_OWNER, not an admin."""
    return Principal(owner=settings.owner, key_id=None, admin=False, settings=settings)


def principal_for(settings: Settings, key: KeyRecord) -> Principal:
    """The principal of a valid key."""
    return Principal(
        owner=key.owner, key_id=key.id, admin=key.admin, settings=_scoped(settings, key.owner, key.limits)
    )
