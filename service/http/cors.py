"""Cross-origin requests: off unless DESCENT_CORS_ORIGINS lists the origins a browser may call from.

Off, browsers let only pages of the service's own origin (the lab) read its answers, and refuse to
send another site's requests that need a preflight (JSON bodies, ``Authorization``). Keys travel in
the ``Authorization`` header, never in cookies, so no credentials mode is allowed.
"""

from __future__ import annotations

from fastapi import FastAPI
from starlette.middleware.cors import CORSMiddleware

from service.settings import Settings

ALLOWED_HEADERS = [
    "Authorization",
    "Content-Type",
    "Accept",
    "Idempotency-Key",
    "Last-Event-ID",
    "X-Request-ID",
]
EXPOSED_HEADERS = [
    "Location",
    "Retry-After",
    "X-Request-ID",
    "RateLimit-Limit",
    "RateLimit-Remaining",
    "RateLimit-Reset",
    "RateLimit-Policy",
]


def install_cors(app: FastAPI, settings: Settings) -> None:
    """Add the CORS layer (outermost, so preflights are answered before the gate) when origins are set."""
    origins = settings.cors_origin_list
    if not origins:
        return
    app.add_middleware(
        CORSMiddleware,
        allow_origins=origins,
        allow_methods=["GET", "POST", "DELETE"],
        allow_headers=ALLOWED_HEADERS,
        expose_headers=EXPOSED_HEADERS,
        allow_credentials=False,
        max_age=600,
    )
