"""The gate every request passes, run by the request-context middleware before any route.

It decides who a request acts as (a :class:`~service.services.identity.Principal`), refuses what a
browser on another site could send without asking (form and plain-text bodies to a state-changing
endpoint), and takes a token from its key's bucket (``service.http.ratelimit``).

A failed authentication (401) takes a token from the client address's bucket of failures instead; once
that bucket is empty, the address's requests get 429 before any key is looked up, so guessing keys is
bounded. A key this process already trusts (its cache) is still admitted.

Open without a key: the lab and documentation pages, ``/openapi.json``, ``/healthz``, ``/readyz``, and
``/metrics`` unless DESCENT_METRICS_AUTH. Everything under ``/v1/`` needs ``Authorization: Bearer
<key>`` with DESCENT_AUTH=keys; with ``none`` it acts as DESCENT_OWNER.

A checked key is trusted for DESCENT_KEY_CACHE_S (by the SHA-256 of its text: the key itself is kept
nowhere), so most requests never read the store.
"""

from __future__ import annotations

import hashlib
import ipaddress
import time
from typing import NamedTuple

import anyio.to_thread
from fastapi.routing import APIRoute
from starlette.routing import Match
from starlette.types import Scope

from service.errors import DomainError, Forbidden, Unauthorized, UnsupportedMediaType
from service.http.ratelimit import Headers, Policy, RateLimiter, policy
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
        self.rate_limiter = RateLimiter(settings.rate_limit_storage)
        self.failures: Policy | None = None
        if settings.auth_failure_rate_limit:
            self.failures = policy(settings.auth_failure_rate_limit, settings.auth_failure_burst)
        self._cache: dict[bytes, tuple[float, Principal]] = {}

    async def admit(self, scope: Scope) -> Admission:
        """Admit a request or raise the DomainError that answers it (401, 403, 415, 429)."""
        path: str = scope["path"]
        if path.startswith(API_PREFIX):
            if scope["method"] in STATE_CHANGING:
                _refuse_form_bodies(scope)
            if not self.keys:
                return Admission(self.anonymous, [])
            principal = await self._principal(scope)
            settings = principal.settings
            if not settings.rate_limit:
                return Admission(principal, [])
            bucket = policy(settings.rate_limit, settings.rate_limit_burst)
            verdict = await self.rate_limiter.take(principal.key_id or "", bucket)
            if verdict is None:
                return Admission(principal, [])
            if verdict.limited:
                raise verdict.refusal("the API key has used up its requests")
            return Admission(principal, verdict.headers())
        if path == METRICS_PATH and self.keys and self.settings.metrics_auth:
            principal = await self._principal(scope)
            if not principal.admin:
                raise Forbidden("/metrics needs an admin key (DESCENT_METRICS_AUTH)")
            return Admission(principal, [])
        return Admission(None, [])

    async def _principal(self, scope: Scope) -> Principal:
        try:
            presented = _bearer(scope)
        except Unauthorized as exc:
            raise await self._failed(scope, exc) from None
        digest = hashlib.sha256(presented.encode("latin-1")).digest()
        now = time.monotonic()
        cached = self._cache.get(digest)
        if cached is not None and cached[0] > now:
            return cached[1]
        if self.failures is not None:
            # An address out of failures gets no answer about its keys until its bucket refills.
            state = await self.rate_limiter.peek(_client_address(scope), self.failures)
            if state is not None and state.limited:
                raise state.refusal(FAILURES)
        store: Store = scope["app"].state.store
        try:
            record = await anyio.to_thread.run_sync(identity.authenticate, store, presented)
        except Unauthorized as exc:
            raise await self._failed(scope, exc) from None
        principal = identity.principal_for(self.settings, record)
        if self.settings.key_cache_s > 0:
            if len(self._cache) >= _CACHE_LIMIT:
                self._cache.clear()
            self._cache[digest] = (now + self.settings.key_cache_s, principal)
        return principal

    async def _failed(self, scope: Scope, exc: Unauthorized) -> DomainError:
        """The answer to a failed authentication: it takes a token from the client address's bucket of
        failures, so it is the 401 with that bucket's headers, or 429 when the bucket had none left."""
        if self.failures is None:
            return exc
        verdict = await self.rate_limiter.take(_client_address(scope), self.failures)
        if verdict is None:
            return exc
        if verdict.limited:
            return verdict.refusal(FAILURES)
        exc.headers.update(verdict.header_map())
        return exc


FAILURES = "too many failed authentications from this client address"


def _client_address(scope: Scope) -> str:
    """The subject of an address's bucket of failures: ``addr:`` and the client's IP address, its /64
    network for IPv6 (which one host usually holds whole)."""
    client = scope.get("client")
    host = client[0] if client else ""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return "addr:" + host
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return "addr:" + str(address.ipv4_mapped)
        return "addr:" + str(ipaddress.IPv6Network((address, 64), strict=False))
    return "addr:" + str(address)


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
    site's page can send unasked (no CORS preflight). The media type is looked at first, so that the
    route is looked up only for such a body, not for every request."""
    content_type = _header(scope, b"content-type")
    if content_type is None:
        return
    media = content_type.split(b";", 1)[0].strip().lower()
    if media in FORM_MEDIA_TYPES and not _takes_a_body(scope):
        raise UnsupportedMediaType(
            f"{scope['method']} {scope['path']} takes no request body, and refuses a "
            f"{media.decode('latin-1')} one (what a form on another site sends): send none"
        )
