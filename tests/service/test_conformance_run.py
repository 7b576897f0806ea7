"""The conformance run of docs/contract.md: schemathesis over the whole document, against descent serve.

Every operation, all four phases (examples, coverage, fuzzing, stateful through the links), every default
check (event streams validated event by event), with the repository's ``schemathesis.toml``, a fixed seed and
the server settings the document gives. The run must end with no failure, no error and no warning: a
warning says that part of the API went untested (an operation only ever answered 404, or rejected all the
data generated for it).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from service.services.identity import generate
from tests.processes import Process, free_port
from tests.timing import STARTUP_S, limit

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
# A seed of the runs recorded in docs/contract.md.
SEED = 22


@pytest.mark.e2e
@pytest.mark.slow
@pytest.mark.conformance
def test_the_documented_run_reports_no_failure_and_no_warning(tmp_path: Path) -> None:
    key = generate()[1]
    port = free_port()
    env = {
        **os.environ,
        "DESCENT_DATABASE_URL": f"sqlite:///{tmp_path / 'descent.db'}",
        "DESCENT_PORT": str(port),
        "DESCENT_WORKERS": "1",
        "DESCENT_AUTH": "keys",
        "DESCENT_BOOTSTRAP_KEY": key,
        "DESCENT_RATE_LIMIT": "",
        "DESCENT_AUTH_FAILURE_RATE_LIMIT": "",
        "DESCENT_HEAVY_LANE_WAIT_S": "60",
        "DESCENT_LOG_LEVEL": "warning",
    }
    server = Process(
        "descent serve",
        [str(BIN / "descent"), "serve"],
        env=env,
        cwd=tmp_path,
        log_path=tmp_path / "server.log",
    )
    server.start()
    report = tmp_path / "report.json"
    try:
        server.wait_for_http(f"http://127.0.0.1:{port}/healthz", timeout=STARTUP_S)
        command = [
            str(BIN / "schemathesis"),
            "run",
            f"http://127.0.0.1:{port}/openapi.json",
            "-H",
            f"Authorization: Bearer {key}",
            "--request-timeout",
            "60",
            "--seed",
            str(SEED),
            "--generation-database",
            "none",
            "--no-color",
            "--report",
            "json",
            "--report-json-path",
            str(report),
        ]
        # From the repository's root, so that schemathesis reads schemathesis.toml.
        run = subprocess.run(
            command, cwd=ROOT, capture_output=True, text=True, timeout=limit(900), check=False
        )
    finally:
        server.stop(timeout=30)
    output = run.stdout[-6000:] + run.stderr[-2000:]
    assert report.exists(), output
    result = json.loads(report.read_text())
    assert result["complete"] and result["stop_reason"] == "completed", output
    assert {name: phase["status"] for name, phase in result["phases"].items()} == {
        "examples": "success",
        "coverage": "success",
        "fuzzing": "success",
        "stateful": "success",
    }, output
    assert result["failures"] == [] and result["errors"] == [], output
    assert {kind: labels for kind, labels in result["warnings"].items() if labels} == {}, output
    assert result["operations"]["tested"] == result["operations"]["total"] == 30, output
    assert run.returncode == 0, output
