"""The README's tour teaches one XOR convention, the xor generator's, and its examples answer what it says."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from engine.activations import ACTIVATIONS
from engine.datasets import make_dataset
from tests.service.conftest import Client

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


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
