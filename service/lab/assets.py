"""Files the lab and the API documentation load, served from inside installed packages.

Two kinds of file:

- the lab's own (``service/lab/static/``): small, changed with the code; answered with an ETag and
  ``Cache-Control: no-cache``, so a browser revalidates them (304) and never runs stale code;
- third-party bundles taken from installed packages (Plotly.js from ``plotly``, Swagger UI and ReDoc
  from ``fastapi-offline``): megabytes each, so they are answered gzip-compressed when the browser
  accepts it (Plotly.js shrinks from 4.8 MB to 1.4 MB) under a URL that carries the package version,
  and cached as immutable.

Nothing is copied into this repository and nothing is fetched from the network: the packages are
pinned dependencies, and an asset whose package is missing answers 404 with a detail naming it.
"""

from __future__ import annotations

import gzip
import hashlib
import mimetypes
import threading
from dataclasses import dataclass, field
from importlib import resources
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from starlette.requests import Request
from starlette.responses import Response

from service.errors import NotFound

STATIC_DIR = Path(__file__).parent / "static"
# Compressing below this size saves less than it costs.
_GZIP_MIN_BYTES = 1024
_GZIP_LEVEL = 6
IMMUTABLE = "public, max-age=31536000, immutable"
REVALIDATE = "no-cache"


@dataclass
class Asset:
    """One file's bytes, their gzip form (made once, on first use), its ETag and media type."""

    data: bytes
    media_type: str
    cache_control: str
    etag: str = field(init=False)
    _gzipped: bytes | None = field(default=None, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def __post_init__(self) -> None:
        self.etag = '"' + hashlib.sha256(self.data).hexdigest()[:32] + '"'

    def gzipped(self) -> bytes:
        """The gzip encoding (mtime 0, so the bytes are the same on every start)."""
        with self._lock:
            if self._gzipped is None:
                self._gzipped = gzip.compress(self.data, compresslevel=_GZIP_LEVEL, mtime=0)
            return self._gzipped

    def response(self, request: Request) -> Response:
        """200 with the bytes (gzip when accepted and worth it), or 304 when the ETag matches."""
        headers = {"ETag": self.etag, "Cache-Control": self.cache_control, "Vary": "Accept-Encoding"}
        if self.etag in _etags(request.headers.get("if-none-match", "")):
            return Response(status_code=304, headers=headers)
        body = self.data
        if len(body) >= _GZIP_MIN_BYTES and "gzip" in request.headers.get("accept-encoding", ""):
            body = self.gzipped()
            headers["Content-Encoding"] = "gzip"
        return Response(body, media_type=self.media_type, headers=headers)


def _etags(header: str) -> set[str]:
    return {tag.strip().removeprefix("W/") for tag in header.split(",") if tag.strip()}


def _media_type(name: str) -> str:
    guessed = mimetypes.guess_type(name)[0] or "application/octet-stream"
    if guessed.startswith("text/") or guessed in ("application/javascript", "text/javascript"):
        return f"{guessed}; charset=utf-8"
    return guessed


@dataclass(frozen=True)
class VendorFile:
    """A file inside an installed distribution: ``package`` (import name) and its relative ``path``.

    ``replace`` lists byte strings to replace in it as it is read: the way to keep a bundle from
    reaching another host on its own.
    """

    distribution: str
    package: str
    path: str
    replace: tuple[tuple[bytes, bytes], ...] = ()

    def version(self) -> str:
        try:
            return version(self.distribution)
        except PackageNotFoundError:
            return "missing"

    def read(self) -> bytes:
        try:
            data = (resources.files(self.package) / self.path).read_bytes()
        except (ModuleNotFoundError, FileNotFoundError):
            raise NotFound(
                f"{self.path} of the {self.distribution!r} package is not installed; "
                f"install the service with its dependencies (pip install descent)"
            ) from None
        for old, new in self.replace:
            data = data.replace(old, new)
        return data


# Served as /lab/vendor/<name>-<version><suffix>: the version in the URL makes them immutable.
_OFFLINE_DOCS = ("fastapi-offline", "fastapi_offline")
# ReDoc's side menu always shows Redocly's logo, loaded from their CDN: an empty image instead.
REDOC_LOGO_URL = b"https://cdn.redoc.ly/redoc/logo-mini.svg"
_REDOC_LOGO = ((REDOC_LOGO_URL, b"data:image/svg+xml,%3Csvg xmlns='http://www.w3.org/2000/svg'/%3E"),)
VENDOR = {
    "plotly": (VendorFile("plotly", "plotly", "package_data/plotly.min.js"), ".min.js"),
    "swagger-ui-bundle": (VendorFile(*_OFFLINE_DOCS, "static/swagger-ui-bundle.js"), ".js"),
    "swagger-ui": (VendorFile(*_OFFLINE_DOCS, "static/swagger-ui.css"), ".css"),
    "redoc.standalone": (VendorFile(*_OFFLINE_DOCS, "static/redoc.standalone.js", _REDOC_LOGO), ".js"),
}


class AssetCache:
    """Assets by URL name, loaded on first request and kept for the life of the process."""

    def __init__(self, static_dir: Path = STATIC_DIR) -> None:
        self.static_dir = static_dir.resolve()
        self._assets: dict[str, Asset] = {}
        self._lock = threading.Lock()

    def vendor_url(self, key: str) -> str:
        """The URL path of vendor file ``key`` (one of ``VENDOR``), with its package version."""
        file, suffix = VENDOR[key]
        return f"/lab/vendor/{key}-{file.version()}{suffix}"

    def vendor(self, name: str) -> Asset:
        """The vendor asset served under ``name`` (as made by :meth:`vendor_url`); NotFound otherwise."""
        cached = self._assets.get("vendor/" + name)
        if cached is not None:
            return cached
        for key, (file, suffix) in VENDOR.items():
            if name == f"{key}-{file.version()}{suffix}":
                return self._keep("vendor/" + name, Asset(file.read(), _media_type(name), IMMUTABLE))
        raise NotFound(f"no lab asset named {name!r}")

    def static(self, name: str) -> Asset:
        """The lab's own file ``name`` under the static directory; NotFound outside it or when absent."""
        cached = self._assets.get("static/" + name)
        if cached is not None:
            return cached
        path = (self.static_dir / name).resolve()
        if not path.is_relative_to(self.static_dir) or not path.is_file():
            raise NotFound(f"no lab file named {name!r}")
        return self._keep("static/" + name, Asset(path.read_bytes(), _media_type(name), REVALIDATE))

    def page(self, name: str) -> Asset:
        """The HTML page ``name`` with each ``{{<key>_url}}`` replaced by the URL of vendor file ``key``."""
        cached = self._assets.get("page/" + name)
        if cached is not None:
            return cached
        html = self.static(name).data.decode()
        for key in VENDOR:
            html = html.replace(f"{{{{{key}_url}}}}", self.vendor_url(key))
        return self._keep("page/" + name, Asset(html.encode(), _media_type(name), REVALIDATE))

    def _keep(self, key: str, asset: Asset) -> Asset:
        with self._lock:
            return self._assets.setdefault(key, asset)
