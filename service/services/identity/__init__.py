"""Identity: API keys, the principal a request acts as, and its quotas.

Modules: ``keys`` (create, list, revoke, authenticate; keys stored only as SHA-256), ``principal``
(who a request acts as, and the settings it sees: its owner and quotas), ``quotas`` (usage against
the quotas, checked before anything is stored).
"""

from service.services.identity.keys import (
    KEY_PREFIX,
    NewKey,
    authenticate,
    create,
    ensure_bootstrap_key,
    generate,
    key_document,
    list_documents,
    parse_key,
    revoke,
)
from service.services.identity.principal import Principal, anonymous, principal_for
from service.services.identity.quotas import (
    QUOTA_SETTINGS,
    check_room,
    estimate_stored_bytes,
    usage_document,
)

__all__ = [
    "KEY_PREFIX",
    "QUOTA_SETTINGS",
    "NewKey",
    "Principal",
    "anonymous",
    "authenticate",
    "check_room",
    "create",
    "ensure_bootstrap_key",
    "estimate_stored_bytes",
    "generate",
    "key_document",
    "list_documents",
    "parse_key",
    "principal_for",
    "revoke",
    "usage_document",
]
