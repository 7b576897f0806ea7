"""The README's tour teaches one XOR convention, the xor generator's, and its examples answer what it says."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from engine.activations import ACTIVATIONS
from engine.datasets import make_dataset
from tests.processes import Process, free_port
from tests.service.conftest import Client
from tests.timing import JOB_S, STARTUP_S

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()
DESCENT = Path(sys.executable).with_name("descent")


def _body_after(path: str) -> dict:
    """The JSON body of the README's curl call to ``path`` (its ``-d '...'`` argument)."""
    match = re.search(re.escape(path) + r"[^\n]*-d '(.*?)'", README, re.S)
    assert match, f"no curl call to {path} in the README"
    return dict(json.loads(match.group(1)))


def test_the_forward_example_computes_xor_as_the_generator_labels_it(client: Client) -> None:
    body = _body_after("/v1/forward")
    X = np.array(body["X"], dtype=float)
    outputs = np.array(client.post("/v1/forward", json=body).json()["outputs"])[:, 0]
    same_sign = (X[:, 0] * X[:, 1] > 0).astype(int)
    assert (outputs > 0.5).astype(int).tolist() == same_sign.tolist() == [1, 0, 0, 1]
    Xg, yg = make_dataset("xor", 200, noise=0.0, rng=np.random.default_rng(1))
    assert np.array_equal(yg, (Xg[:, 0] * Xg[:, 1] > 0).astype(int))


def test_the_tour_can_run_twice() -> None:
    # Resources made with a fixed Idempotency-Key come back on a second run; none depends on a new id.
    keys = re.findall(r"Idempotency-Key: ([^'\"]+)", README)
    assert keys and all("$" not in key for key in keys)
    creates = re.findall(r"DS=\$\(curl[^\n]*\n", README)
    assert creates and all("Idempotency-Key" in line for line in creates)


def test_the_error_example_lists_the_activations_in_the_servers_order() -> None:
    assert f"allowed: {', '.join(ACTIVATIONS)}" in re.sub(r"\n#\s+", " ", README)


def _tour_blocks() -> list[str]:
    """The shell blocks of the README's section "A quick tour with curl", in order."""
    section = README.split("## A quick tour with curl", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```sh\n(.*?)```", section, re.S)


@pytest.fixture(scope="module")
def tour_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``descent serve`` as ``make serve`` runs it, on a free port with a data directory of its own."""
    tmp_path = tmp_path_factory.mktemp("tour")
    port = free_port()
    env = {
        **os.environ,
        "DESCENT_PORT": str(port),
        "DESCENT_DATABASE_URL": f"sqlite:///{tmp_path / 'descent.db'}",
        "DESCENT_WORKERS": "1",
        "DESCENT_LOG_LEVEL": "warning",
    }
    server = Process(
        "descent serve", [str(DESCENT), "serve"], env=env, cwd=tmp_path, log_path=tmp_path / "log"
    )
    server.start()
    try:
        server.wait_for_http(f"http://127.0.0.1:{port}/healthz", timeout=STARTUP_S)
        yield f"127.0.0.1:{port}"
    finally:
        server.stop(timeout=30)


def _run_tour(address: str, workdir: Path) -> dict[str, str]:
    """Every tour block in bash (exiting on the first failing command), and the ids it ended with."""
    script = "set -euo pipefail\n" + "\n".join(_tour_blocks()).replace("localhost:8000", address)
    script += '\necho; echo "DS=$DS JOB=$JOB MODEL=$MODEL"\n'
    done = subprocess.run(
        ["bash", "-c", script], cwd=workdir, capture_output=True, text=True, timeout=JOB_S, check=False
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    ids = dict(item.split("=", 1) for item in done.stdout.strip().splitlines()[-1].split())
    assert ids["DS"].startswith("ds_") and ids["JOB"].startswith("job_") and ids["MODEL"].startswith("mdl_")
    # What the tour says it prints: the trained MLP predicts 1, 0, 1; cancelling a finished job is 409.
    assert '"predictions":[1,0,1]' in done.stdout, done.stdout[-2000:]
    assert '"status":409' in done.stdout and "already succeeded" in done.stdout
    assert (workdir / "model.json").stat().st_size > 0
    return ids


@pytest.mark.e2e
def test_the_tour_runs_twice_in_a_row_against_one_server(tour_server: str, tmp_path: Path) -> None:
    first = _run_tour(tour_server, tmp_path)
    second = _run_tour(tour_server, tmp_path)
    # The Idempotency-Keys bring back the dataset, the MLP job and so its model.
    assert second == first


def test_the_conventions_are_stated_in_the_readme() -> None:
    text = re.sub(r"\s+", " ", README)
    for phrase in (
        "Sutskever's form",
        "bias corrections",
        "coupled L2 penalty on the weights only",
        "`adamw` decays the weights decoupled",
        "`clip_grad_norm_`",
        "computed from the logits",
        "mean over all elements",
        "`min_delta` decides only when to stop",
    ):
        assert phrase in text, phrase
