"""Property-based API tests generated from the whole OpenAPI document (schemathesis).

Every operation is called with inputs drawn from its schema (its examples, boundary values, random
data), through the app's lifespan, with schemathesis's default checks and the repository's
``schemathesis.toml`` (which names the operations whose fields depend on each other beyond JSON
Schema). No answer may be a server error, every answer must match its documented status, headers and
schema, and data the document calls valid must be accepted. The event stream is checked event by
event in ``test_schemathesis_sse.py``.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import schemathesis
from hypothesis import HealthCheck, settings

from service.app import create_app
from service.services.identity import generate
from service.settings import Settings

ROOT = Path(__file__).resolve().parents[2]

# .npz and .npy bodies (dataset upload, model import, compute, predict) are bytes: sent as generated,
# like application/octet-stream.
schemathesis.serializer.alias(["application/x-npz", "application/x-npy"], "application/octet-stream")


# The store of the app under test: a throwaway SQLite file, removed when the test process ends.
_DATA = tempfile.TemporaryDirectory(prefix="descent-schemathesis-")
# The app needs a key (DESCENT_AUTH=keys), so schemathesis's ignored_auth check sees every /v1 operation
# refuse requests without one, or with a wrong one, as the document declares; cases carry the key.
KEY = generate()[1]
schema = schemathesis.openapi.from_asgi(
    "/openapi.json",
    create_app(
        Settings(
            log_level="warning",
            workers=0,
            database_url=f"sqlite:///{_DATA.name}/descent.db",
            auth="keys",
            bootstrap_key=KEY,
            rate_limit="",
            auth_failure_rate_limit="",
        )
    ),
    config=schemathesis.Config.from_path(ROOT / "schemathesis.toml"),
)


@schema.parametrize()
@settings(
    max_examples=10,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large],
)
def test_api_conforms_to_its_schema(case: schemathesis.Case) -> None:
    case.call_and_validate(headers={"Authorization": f"Bearer {KEY}"})
