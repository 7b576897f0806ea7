"""The lab's page and files, and the offline documentation pages, served in-process."""

from __future__ import annotations

import re
from importlib import resources
from importlib.metadata import version

from service.lab.assets import REDOC_LOGO_URL, STATIC_DIR
from service.lab.routes import CONTENT_SECURITY_POLICY
from tests.service.conftest import Client, assert_problem

PLOTLY_URL = f"/lab/vendor/plotly-{version('plotly')}.min.js"
OFFLINE = version("fastapi-offline")
# Any absolute URL in a page or module would be a request to another host.
ABSOLUTE_URL = re.compile(rb"""(?:src|href)\s*=\s*["'](?:https?:)?//""", re.IGNORECASE)


def test_lab_page_names_the_packaged_plotly_and_forbids_other_origins(client: Client) -> None:
    response = client.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert "default-src 'self'" in CONTENT_SECURITY_POLICY
    assert response.headers["cache-control"] == "no-cache"
    assert f'<script src="{PLOTLY_URL}" defer></script>' in response.text
    assert "{{" not in response.text
    assert not ABSOLUTE_URL.search(response.content)


def test_plotly_is_the_packaged_bundle_gzip_compressed_and_immutable(client: Client) -> None:
    packaged = (resources.files("plotly") / "package_data" / "plotly.min.js").read_bytes()
    response = client.get(PLOTLY_URL, headers={"Accept-Encoding": "gzip"})
    assert response.status_code == 200
    assert response.headers["content-encoding"] == "gzip"
    assert response.headers["content-type"].startswith("text/javascript")
    assert response.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert response.content == packaged  # httpx undoes the gzip
    assert int(response.headers["content-length"]) < len(packaged) / 2


def test_a_file_is_answered_uncompressed_to_a_client_that_does_not_take_gzip(client: Client) -> None:
    response = client.get(PLOTLY_URL, headers={"Accept-Encoding": "identity"})
    assert response.status_code == 200
    assert "content-encoding" not in response.headers
    assert int(response.headers["content-length"]) > 1_000_000


def test_a_matching_etag_answers_304_without_a_body(client: Client) -> None:
    first = client.get("/lab/js/main.js")
    assert first.status_code == 200
    assert first.headers["cache-control"] == "no-cache"
    assert first.content == (STATIC_DIR / "js" / "main.js").read_bytes()
    again = client.get("/lab/js/main.js", headers={"If-None-Match": first.headers["etag"]})
    assert again.status_code == 304
    assert again.content == b""
    assert again.headers["etag"] == first.headers["etag"]


def test_lab_files_have_their_media_types(client: Client) -> None:
    assert client.get("/lab/lab.css").headers["content-type"] == "text/css; charset=utf-8"
    assert client.get("/lab/favicon.svg").headers["content-type"] == "image/svg+xml"
    module = client.get("/lab/js/views/playground.js")
    assert module.headers["content-type"] == "text/javascript; charset=utf-8"


def test_paths_outside_the_lab_and_unknown_bundles_are_404_problems(client: Client) -> None:
    assert_problem(client.get("/lab/%2e%2e/assets.py"), 404, "no lab file named")
    assert_problem(client.get("/lab/js/nothing.js"), 404, "no lab file named 'js/nothing.js'")
    assert_problem(client.get("/lab/vendor/plotly-0.0.1.min.js"), 404, "no lab asset named")


def test_no_module_of_the_lab_names_another_host() -> None:
    for path in STATIC_DIR.rglob("*"):
        if path.is_file():
            text = path.read_bytes()
            assert not ABSOLUTE_URL.search(text), path
            assert b'fetch("http' not in text and b"fetch('http" not in text, path


def test_swagger_ui_loads_its_script_and_style_from_this_service(client: Client) -> None:
    page = client.get("/docs")
    assert page.status_code == 200
    html = page.text
    script = f"/lab/vendor/swagger-ui-bundle-{OFFLINE}.js"
    style = f"/lab/vendor/swagger-ui-{OFFLINE}.css"
    assert f'src="{script}"' in html and f'href="{style}"' in html
    assert "cdn.jsdelivr.net" not in html and "https://" not in html
    assert '"validatorUrl": null' in html
    for url in (script, style):
        assert client.get(url).status_code == 200
    assert client.get("/docs/oauth2-redirect").status_code == 200


def test_redoc_loads_its_script_from_this_service_without_web_fonts(client: Client) -> None:
    page = client.get("/redoc")
    assert page.status_code == 200
    script = f"/lab/vendor/redoc.standalone-{OFFLINE}.js"
    assert f'src="{script}"' in page.text
    assert "fonts.googleapis.com" not in page.text and "https://" not in page.text
    bundle = client.get(script, headers={"Accept-Encoding": "gzip"})
    assert bundle.status_code == 200
    packaged = (resources.files("fastapi_offline") / "static" / "redoc.standalone.js").read_bytes()
    # The one address of another host in the bundle, Redocly's logo, is replaced by an empty image.
    assert packaged.count(REDOC_LOGO_URL) == 1
    assert REDOC_LOGO_URL not in bundle.content
    assert (
        bundle.content.replace(
            b"data:image/svg+xml,%3Csvg xmlns='http://www.w3.org/2000/svg'/%3E", REDOC_LOGO_URL
        )
        == packaged
    )


def test_the_pages_are_not_operations_of_the_api(client: Client) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert not [path for path in paths if path == "/" or path.startswith(("/lab", "/docs", "/redoc"))]
