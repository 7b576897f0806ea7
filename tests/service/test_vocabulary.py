"""Each vocabulary is defined once (service.vocabulary) and the API document lists it as defined.

The store's CHECK constraints use the same tuples; tests/service/store/test_migrations.py checks that the
migrations agree with them.
"""

from __future__ import annotations

import json
from pathlib import Path

from service import vocabulary

OPENAPI = Path(__file__).resolve().parents[2] / "openapi" / "openapi.json"


def test_the_terminal_and_active_statuses_partition_the_job_statuses() -> None:
    assert set(vocabulary.ACTIVE_STATUSES).isdisjoint(vocabulary.TERMINAL_STATUSES)
    assert (*vocabulary.ACTIVE_STATUSES, *vocabulary.TERMINAL_STATUSES) == vocabulary.JOB_STATUSES
    assert set(vocabulary.RUN_STATUSES) < set(vocabulary.ACTIVE_STATUSES)


def test_the_openapi_document_lists_each_vocabulary_as_defined() -> None:
    schemas = json.loads(OPENAPI.read_text())["components"]["schemas"]
    assert schemas["Job"]["properties"]["status"]["enum"] == list(vocabulary.JOB_STATUSES)
    assert schemas["JobError"]["properties"]["type"]["enum"] == list(vocabulary.ERROR_TYPES)
    assert schemas["Event"]["properties"]["event"]["enum"] == list(vocabulary.EVENT_KINDS)
    assert schemas["Dataset"]["properties"]["task"]["enum"] == list(vocabulary.TASKS)
    assert schemas["Model"]["properties"]["task"]["enum"] == list(vocabulary.TASKS)
