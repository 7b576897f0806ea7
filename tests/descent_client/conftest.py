"""A real ``descent serve`` per test module (see ``tests.service.test_jobs_e2e.ServiceProcess``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from descent_client import Client
from tests.service.test_jobs_e2e import ServiceProcess
from tests.timing import STARTUP_S


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    with ServiceProcess(tmp_path_factory.mktemp("service")) as running:
        yield running


@pytest.fixture
def client(service: ServiceProcess) -> Iterator[Client]:
    with Client(service.url, reconnect_timeout=STARTUP_S) as opened:
        yield opened
