"""The lab at ``/``, its files under ``/lab/``, and the API documentation at ``/docs`` and ``/redoc``.

Every page here loads files from this service only: the documentation uses Swagger UI and ReDoc from
an installed package rather than a CDN (FastAPI's offline recipe), without web fonts, and the lab
sends a Content-Security-Policy that forbids any other origin.
"""

from __future__ import annotations

import anyio.to_thread
from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from starlette.responses import Response

from service.lab.assets import AssetCache

# The lab's own policy: scripts, styles, fetches and images from this origin only. Plotly sets
# inline styles on the elements it draws, and draws some images as data: URLs.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; "
    "form-action 'self'"
)
DOCS_URL, REDOC_URL, OAUTH2_REDIRECT_URL = "/docs", "/redoc", "/docs/oauth2-redirect"
SWAGGER_UI_PARAMETERS = {
    "dom_id": "#swagger-ui",
    "layout": "BaseLayout",
    "deepLinking": True,
    "showExtensions": True,
    "showCommonExtensions": True,
    # The default validator badge asks validator.swagger.io about the document: not offline, not ours.
    "validatorUrl": None,
    "tryItOutEnabled": False,
}


def _assets(request: Request) -> AssetCache:
    cache: AssetCache = request.app.state.lab_assets
    return cache


async def lab_page(request: Request) -> Response:
    """The lab: one HTML page whose modules call the public API."""
    page = await anyio.to_thread.run_sync(_assets(request).page, "index.html")
    response = page.response(request)
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    return response


async def vendor_file(request: Request) -> Response:
    """Plotly.js, Swagger UI and ReDoc from their packages, gzip-compressed, cached as immutable."""
    asset = await anyio.to_thread.run_sync(_assets(request).vendor, request.path_params["name"])
    # The first request of each bundle compresses it (about 0.2 s for Plotly.js): off the event loop.
    if "gzip" in request.headers.get("accept-encoding", ""):
        await anyio.to_thread.run_sync(asset.gzipped)
    return asset.response(request)


async def lab_file(request: Request) -> Response:
    """The lab's own modules and style sheet."""
    asset = await anyio.to_thread.run_sync(_assets(request).static, request.path_params["path"])
    return asset.response(request)


async def swagger_ui(request: Request) -> Response:
    """Swagger UI over /openapi.json, its script and style sheet served by this service."""
    assets = _assets(request)
    return get_swagger_ui_html(
        openapi_url=request.app.openapi_url or "/openapi.json",
        title=f"{request.app.title} - Swagger UI",
        oauth2_redirect_url=OAUTH2_REDIRECT_URL,
        swagger_js_url=assets.vendor_url("swagger-ui-bundle"),
        swagger_css_url=assets.vendor_url("swagger-ui"),
        swagger_favicon_url="/lab/favicon.svg",
        swagger_ui_parameters=SWAGGER_UI_PARAMETERS,
    )


async def swagger_ui_redirect(request: Request) -> Response:
    return get_swagger_ui_oauth2_redirect_html()


async def redoc(request: Request) -> Response:
    """ReDoc over /openapi.json, without web fonts (they would come from another host)."""
    return get_redoc_html(
        openapi_url=request.app.openapi_url or "/openapi.json",
        title=f"{request.app.title} - ReDoc",
        redoc_js_url=_assets(request).vendor_url("redoc.standalone"),
        redoc_favicon_url="/lab/favicon.svg",
        with_google_fonts=False,
    )


def install_lab(app: FastAPI) -> None:
    """Serve the lab and the offline documentation on ``app`` (created with ``docs_url=None``)."""
    if app.docs_url is not None or app.redoc_url is not None:
        raise ValueError("create the app with docs_url=None and redoc_url=None: the lab serves both pages")
    app.state.lab_assets = AssetCache()
    # Plain routes rather than API operations: pages and files, not part of the OpenAPI document.
    pages = [
        ("/", lab_page),
        ("/lab/vendor/{name}", vendor_file),
        ("/lab/{path:path}", lab_file),
        (DOCS_URL, swagger_ui),
        (OAUTH2_REDIRECT_URL, swagger_ui_redirect),
        (REDOC_URL, redoc),
    ]
    for path, endpoint in pages:
        app.router.add_route(path, endpoint, methods=["GET"], include_in_schema=False)
