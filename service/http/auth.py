"""The gate every request passes, run by the request-context middleware before any route.

It decides who a request acts as (a :class:`~service.services.identity.Principal`), refuses what a
browser on another site could send without asking (form and plain-text bodies to a state-changing
endpoint), and counts the request against its key's rate limit.

Open without a key: the lab and documentation pages, ``/openapi.json``, ``/healthz``, ``/readyz``, and
``/metrics`` unless DESCENT_METRICS_AUTH. Everything under ``/v1/`` needs ``Authorization: Bearer
<key>`` with DESCENT_AUTH=keys; with ``none`` it acts as DESCENT_OWNER.

A checked key is trusted for DESCENT_KEY_CACHE_S (by the SHA-256 of its text: the key itself is kept
nowhere), so most requests never read the store.
"""

from __future__ import annotations

import hashlib
import time
from typing import NamedTuple

import anyio.to_thread
from fastapi.routing import APIRoute
from starlette.routing import Match
from starlette.types import Scope

from service.errors import Forbidden, Unauthorized, UnsupportedMediaType
from service.http.ratelimit import Headers, KeyRateLimiter
from service.services import identity
from service.services.identity import Principal
from service.settings import Settings
from service.store import Store

API_PREFIX = "/v1/"
METRICS_PATH = "/metrics"
STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# The bodies an HTML form (or a no-cors fetch) may send to another site without a preflight.
FORM_MEDIA_TYPES = (b"application/x-www-form-urlencoded", b"multipart/form-data", b"text/plain")
_CACHE_LIMIT = 10_000


class Admission(NamedTuple):
    """Who the request acts as, and the headers its answer carries (rate limits)."""

    principal: Principal | None
    headers: Headers


class Gate:
    """Authentication, cross-site refusals and rate limits for one application."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.keys = settings.auth == "keys"
        self.anonymous = identity.anonymous(settings)
        self.rate_limiter = KeyRateLimiter(settings.rate_limit_storage)
        self._cache: dict[bytes, tuple[float, Principal]] = {}

    async def admit(self, scope: Scope) -> Admission:
        """Admit a request or raise the DomainError that answers it (401, 403, 415, 429)."""
        path: str = scope["path"]
        if path.startswith(API_PREFIX):
            if scope["method"] in STATE_CHANGING and not _takes_a_body(scope):
                _refuse_form_bodies(scope)
            if not self.keys:
                return Admission(self.anonymous, [])
            principal = await self._principal(scope)
            rate = principal.settings.rate_limit
            headers = await self.rate_limiter.hit(principal.key_id or "", rate) if rate else []
            return Admission(principal, headers)
        if path == METRICS_PATH and self.keys and self.settings.metrics_auth:
            principal = await self._principal(scope)
            if not principal.admin:
                raise Forbidden("/metrics needs an admin key (DESCENT_METRICS_AUTH)")
            return Admission(principal, [])
        return Admission(None, [])

    async def _principal(self, scope: Scope) -> Principal:
        presented = _bearer(scope)
        digest = hashlib.sha256(presented.encode("latin-1")).digest()
        now = time.monotonic()
        cached = self._cache.get(digest)
        if cached is not None and cached[0] > now:
            return cached[1]
        store: Store = scope["app"].state.store
        record = await anyio.to_thread.run_sync(identity.authenticate, store, presented)
        principal = identity.principal_for(self.settings, record)
        if self.settings.key_cache_s > 0:
            if len(self._cache) >= _CACHE_LIMIT:
                self._cache.clear()
            self._cache[digest] = (now + self.settings.key_cache_s, principal)
        return principal


def _header(scope: Scope, wanted: bytes) -> bytes | None:
    for name, value in scope["headers"]:
        if name == wanted:
            return bytes(value)
    return None


def _bearer(scope: Scope) -> str:
    """The key of ``Authorization: Bearer <key>``; 401 when the header is missing or of another scheme."""
    header = _header(scope, b"authorization")
    if header is None:
        raise Unauthorized("this endpoint needs an API key: send Authorization: Bearer <key>")
    scheme, _, key = header.decode("latin-1").strip().partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise Unauthorized("the Authorization header must be Bearer <key>")
    return key.strip()


def _takes_a_body(scope: Scope) -> bool:
    """Whether the request's route documents a request body: it then checks the body's media type itself
    (and refuses form and plain-text bodies, which none takes, naming the types it does take)."""
    if _header(scope, b"content-type") is None:
        return False
    for route in scope["app"].router.routes:
        if isinstance(route, APIRoute) and route.matches(scope)[0] == Match.FULL:
            return route.body_field is not None or "requestBody" in (route.openapi_extra or {})
    return False


def _refuse_form_bodies(scope: Scope) -> None:
    """415 for a form or plain-text body to a route that takes no body: those are the bodies another
    site's page can send unasked (no CORS preflight)."""
    content_type = _header(scope, b"content-type")
    if content_type is None:
        return
    media = content_type.split(b";", 1)[0].strip().lower()
    if media in FORM_MEDIA_TYPES:
        raise UnsupportedMediaType(
            f"{scope['method']} {scope['path']} takes no request body, and refuses a "
            f"{media.decode('latin-1')} one (what a form on another site sends): send none"
        )
