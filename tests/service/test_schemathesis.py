"""Property-based API tests generated from the OpenAPI document (schemathesis).

Every compute and operations endpoint is called with inputs drawn from its schema; no answer may be
a server error and every answer must match its documented schema.
"""

from __future__ import annotations

import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from service.app import create_app
from service.settings import Settings

# An app without a lifespan: the compute endpoints need no store, and the datasets, jobs and models
# endpoints (which do) are left out below.
schema = schemathesis.openapi.from_asgi(
    "/openapi.json", create_app(Settings(log_level="warning", workers=0))
).include(tag=["activations", "losses", "compute", "operations"])


@schema.parametrize()
@settings(
    max_examples=25,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large],
)
def test_api_conforms_to_its_schema(case: schemathesis.Case) -> None:
    case.call_and_validate(checks=[not_a_server_error, response_schema_conformance])
