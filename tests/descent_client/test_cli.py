"""Every ``descent`` client command against a real ``descent serve``, in each output format.

Commands run in-process with click's runner (stdout and stderr kept apart); the terminal behaviour
(progress bar, Ctrl-C) is in ``test_cli_tty``.
"""

from __future__ import annotations

import csv
import io
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner, Result

from descent_client import Client
from service.cli import cli
from tests.service.test_jobs_e2e import ServiceProcess
from tests.timing import STARTUP_S

pytestmark = pytest.mark.e2e

DESCENT = Path(sys.executable).with_name("descent")


class Descent:
    """``descent …`` against the test service."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.runner = CliRunner(env={"DESCENT_URL": url, "DESCENT_API_KEY": None, "COLUMNS": "200"})

    def __call__(self, *args: str, code: int = 0, stdin: str | bytes | None = None) -> Result:
        result = self.runner.invoke(cli, list(args), input=stdin, catch_exceptions=False)
        assert result.exit_code == code, (
            f"descent {' '.join(args)} exited {result.exit_code}\n{result.output}"
        )
        return result

    def json(self, *args: str, code: int = 0) -> Any:
        return json.loads(self(*args, "-o", "json", code=code).stdout)


@pytest.fixture(scope="module")
def descent(service: ServiceProcess) -> Descent:
    return Descent(service.url)


@pytest.fixture(scope="module")
def trained(descent: Descent) -> dict[str, Any]:
    """A dataset, a succeeded job and its model, made with the CLI."""
    dataset = descent.json("datasets", "create", "xor:n=200,noise=0.05,seed=1", "--name", "xor-cli")
    job = descent.json(
        "train", dataset["id"], "--hidden", "8", "--optimizer", "adam", "--lr", "0.05", "--epochs", "40",
        "--batch-size", "20", "--validation", "0.2", "--seed", "3",
    )  # fmt: skip
    return {"dataset": dataset, "job": job, "model_id": job["model_id"]}


def test_datasets_create_from_every_source(descent: Descent, tmp_path: Path) -> None:
    shown = descent("datasets", "create", "moons:n=120,noise=0.1,seed=7").stdout
    assert re.search(r"name\s+moons-120", shown) and re.search(r"samples\s+120", shown)
    (tmp_path / "pets.csv").write_text("weight,height,kind\n4.1,30,cat\n9.5,60,dog\n3.8,25,cat\n")
    csv_dataset = descent.json("datasets", "create", str(tmp_path / "pets.csv"), "--label", "kind")
    assert (csv_dataset["name"], csv_dataset["classes"]) == ("pets", ["cat", "dog"])
    np.savez(tmp_path / "sums.npz", X=np.arange(8.0).reshape(4, 2), y=np.array([1.0, 5.0, 9.0, 13.5]))
    npz_dataset = descent.json("datasets", "create", str(tmp_path / "sums.npz"), "--name", "sums")
    assert (npz_dataset["name"], npz_dataset["task"]) == ("sums", "regression")
    (tmp_path / "and.json").write_text(json.dumps({"X": [[0, 0], [0, 1], [1, 0], [1, 1]], "y": [0, 0, 0, 1]}))
    json_dataset = descent.json("datasets", "create", str(tmp_path / "and.json"))
    assert (json_dataset["name"], json_dataset["class_counts"]) == ("and", [3, 1])
    (tmp_path / "drawn.json").write_text(
        json.dumps({"name": "in-file", "generator": {"kind": "xor", "n_samples": 20}})
    )
    flags = ("--name", "flag", "--task", "regression", "--label", "t")
    drawn = descent.json("datasets", "create", str(tmp_path / "drawn.json"), *flags)
    assert (drawn["name"], drawn["task"], drawn["source"]["label"]) == ("flag", "regression", "t")
    shorthand = descent.json("datasets", "create", "xor:n=20", "--task", "regression", "--label", "target")
    assert (shorthand["task"], shorthand["source"]["columns"]) == ("regression", ["x0", "x1", "target"])
    quiet = descent("datasets", "create", "blobs:n=30,classes=4", "-q").stdout
    assert re.fullmatch(r"ds_\w+\n", quiet)
    failed = descent("datasets", "create", "nothing-here.csv", code=2)
    assert "neither a file nor a generator shorthand" in failed.stderr


def test_datasets_list_show_delete(descent: Descent) -> None:
    created = descent("datasets", "create", "circles:n=50", "-q").stdout.strip()
    listed = descent("datasets", "list").stdout
    assert created in listed and listed.splitlines()[0].split()[:3] == ["id", "name", "task"]
    rows = list(csv.DictReader(io.StringIO(descent("datasets", "list", "-o", "csv").stdout)))
    assert created in [row["id"] for row in rows]
    assert descent.json("datasets", "show", created)["n_samples"] == 50
    assert descent("datasets", "show", created, "-q").stdout == created + "\n"
    assert descent.json("datasets", "delete", created) == {"deleted": [created]}
    missing = descent("datasets", "show", created, code=1)
    assert f"error: not-found (404): dataset '{created}' not found" in missing.stderr
    problem = json.loads(descent("datasets", "show", created, "-o", "json", code=1).stderr)["error"]
    assert (problem["status"], problem["type"]) == (404, "urn:descent:problem:not-found")


def test_train_follows_and_reports_success(descent: Descent, trained: dict[str, Any]) -> None:
    job = trained["job"]
    assert job["status"] == "succeeded" and job["progress"]["epoch"] == 40
    assert job["config"]["model"] == {"type": "mlp", "hidden_layers": [8], "activation": "tanh"}
    assert job["config"]["optimizer"]["name"] == "adam" and job["config"]["batch_size"] == 20
    result = descent("train", "xor:n=100,seed=2", "--model", "logistic_regression", "--epochs", "20")
    assert re.search(r"status\s+succeeded", result.stdout) and re.search(r"epochs\s+20/20", result.stdout)
    # Off a terminal there is no bar, only the status lines.
    assert "running, attempt 1" in result.stderr and "\x1b[" not in result.output
    quiet = descent("train", "xor:n=100,seed=2", "--model", "logistic_regression", "--epochs", "5", "-q")
    assert re.fullmatch(r"mdl_\w+\n", quiet.stdout) and quiet.stderr == ""


def test_train_exits_1_with_the_error_of_a_failed_job(descent: Descent) -> None:
    args = ("train", "linear:n=100", "--model", "linear_regression", "--optimizer", "gd", "--lr", "1000")
    failed = descent(*args, "--epochs", "50", code=1)
    assert re.search(
        r"error: job job_\w+ failed: diverged: the training loss became non-finite", failed.stderr
    )
    document = json.loads(descent(*args, "--epochs", "50", "-o", "json", code=1).stdout)
    assert document["status"] == "failed" and document["error"]["type"] == "diverged"
    invalid = descent("train", "xor", "--model", "linear_regression", code=1)
    assert "invalid-input (422)" in invalid.stderr and "model.type" in invalid.stderr


def test_train_with_a_config_file_dry_run_and_detach(descent: Descent, tmp_path: Path) -> None:
    config = {
        "dataset": {"generator": {"kind": "spiral", "n_samples": 90, "n_classes": 3, "seed": 1}},
        "model": {"type": "softmax_regression"},
        "optimizer": {"name": "sgd", "learning_rate": 0.2},
        "batch_size": 16,
        "epochs": 10,
    }
    (tmp_path / "job.json").write_text(json.dumps(config))
    resolved = descent.json("train", "--config", str(tmp_path / "job.json"), "--epochs", "12", "--dry-run")
    assert resolved["config"]["epochs"] == 12 and resolved["task"] == "multiclass"
    assert resolved["config"]["optimizer"]["name"] == "sgd"
    detached = descent.json("train", "--config", str(tmp_path / "job.json"), "--detach")
    assert detached["status"] in ("queued", "running", "succeeded")
    followed = descent.json("jobs", "follow", detached["id"])
    assert followed["status"] == "succeeded" and followed["progress"]["epoch"] == 10
    assert "give a DATASET" in descent("train", code=2).stderr


def test_jobs_commands(descent: Descent, trained: dict[str, Any]) -> None:
    job_id = trained["job"]["id"]
    assert job_id in descent("jobs", "list").stdout
    page = descent.json("jobs", "list", "--status", "succeeded", "--limit", "2")
    assert len(page["items"]) <= 2 and all(j["status"] == "succeeded" for j in page["items"])
    shown = descent("jobs", "show", job_id).stdout
    assert re.search(r"model\s+mlp \[8\] tanh", shown) and re.search(r"epochs\s+40/40", shown)
    assert descent.json("jobs", "show", job_id)["model_id"] == trained["model_id"]
    followed = descent("jobs", "follow", job_id)
    assert re.search(r"status\s+succeeded", followed.stdout)

    table = descent("jobs", "metrics", job_id, "--max-points", "5").stdout.splitlines()
    assert table[0].split() == ["epoch", "train_loss", "val_loss", "train_accuracy", "val_accuracy"]
    rows = list(csv.DictReader(io.StringIO(descent("jobs", "metrics", job_id, "-o", "csv").stdout)))
    assert [int(row["epoch"]) for row in rows] == list(range(1, 41))
    history = descent.json("jobs", "metrics", job_id, "--since-epoch", "30")
    assert history["epochs"] == list(range(31, 41))
    assert float(rows[-1]["train_loss"]) == history["train_loss"][-1]

    conflict = descent("jobs", "cancel", job_id, code=1)
    assert "conflict (409)" in conflict.stderr


def test_jobs_cancel_and_follow_a_cancelled_job(descent: Descent) -> None:
    job = descent.json(
        "train", "moons:n=300", "--optimizer", "sgd", "--batch-size", "4", "--epochs", "1000000", "--detach"
    )
    cancelled = descent.json("jobs", "cancel", job["id"], "--wait")
    assert cancelled["status"] == "cancelled"
    followed = descent("jobs", "follow", job["id"], code=1)
    assert re.search(rf"error: job {job['id']} cancelled", followed.stderr)


def test_models_commands(descent: Descent, trained: dict[str, Any], tmp_path: Path) -> None:
    model_id = trained["model_id"]
    assert model_id in descent("models", "list").stdout
    assert model_id in descent("models", "list", "-q").stdout.split()
    shown = descent("models", "show", model_id).stdout
    assert re.search(r"layers\s+2 → 8 tanh → 1 sigmoid", shown)
    assert set(descent.json("models", "show", model_id, "--parameters")["parameters"]) == {
        "W0",
        "b0",
        "W1",
        "b1",
    }

    (tmp_path / "x.csv").write_text("a,b\n0.5,0.5\n-0.5,0.5\n")
    table = descent("models", "predict", model_id, str(tmp_path / "x.csv")).stdout.splitlines()
    assert table[0].split() == ["row", "prediction", "p(1)"]
    as_json = descent.json("models", "predict", model_id, str(tmp_path / "x.csv"))
    from_stdin = json.loads(
        descent(
            "models", "predict", model_id, "-", "-o", "json", stdin='{"X": [[0.5, 0.5], [-0.5, 0.5]]}'
        ).stdout
    )
    assert from_stdin == as_json and len(as_json["predictions"]) == 2
    rows = list(
        csv.reader(
            io.StringIO(
                descent(
                    "models", "predict", model_id, "--dataset", trained["dataset"]["id"], "-o", "csv"
                ).stdout
            )
        )
    )
    assert rows[0] == ["row", "prediction", "p(1)"] and len(rows) == 201

    exported = descent.json(
        "models", "export", model_id, "--format", "npz", "--file", str(tmp_path / "m.npz")
    )
    assert exported["bytes"] == (tmp_path / "m.npz").stat().st_size > 0
    descent("models", "export", model_id, "--file", str(tmp_path / "m.json"))
    sha = descent.json("models", "show", model_id)["sha256"]
    for name in ("m.npz", "m.json"):
        imported = descent.json("models", "import", str(tmp_path / name))
        assert imported["sha256"] == sha and imported["id"] != model_id
        assert descent("models", "delete", imported["id"]).stdout == f"deleted {imported['id']}\n"
    printed = descent("models", "export", model_id, "--file", "-").stdout
    assert json.loads(printed)["format"] == "descent.model/v1"
    assert "give either INPUT or --dataset" in descent("models", "predict", model_id, code=2).stderr


def test_every_command_speaks_json(descent: Descent, trained: dict[str, Any], tmp_path: Path) -> None:
    dataset_id, job_id, model_id = trained["dataset"]["id"], trained["job"]["id"], trained["model_id"]
    with Client(descent.url) as client:
        doomed = client.datasets.generate("xor", n_samples=10).id
    (tmp_path / "x.json").write_text('{"X": [[1, 2]]}')
    model_file = tmp_path / "model.json"
    descent("models", "export", model_id, "--file", str(model_file))
    commands = [
        ["datasets", "create", "xor:n=10"],
        ["datasets", "list"],
        ["datasets", "show", dataset_id],
        ["datasets", "delete", doomed],
        ["train", "xor:n=20", "--model", "logistic_regression", "--epochs", "2"],
        ["train", dataset_id, "--model", "logistic_regression", "--epochs", "2", "--detach"],
        ["train", dataset_id, "--model", "logistic_regression", "--dry-run"],
        ["jobs", "list"],
        ["jobs", "show", job_id],
        ["jobs", "follow", job_id],
        ["jobs", "metrics", job_id],
        ["models", "list"],
        ["models", "show", model_id],
        ["models", "predict", model_id, str(tmp_path / "x.json")],
        ["models", "export", model_id, "--file", str(tmp_path / "again.json")],
        ["models", "import", str(model_file)],
    ]
    for command in commands:
        document = descent.json(*command)
        assert isinstance(document, dict) and document, command
    cancel = descent.json(
        "train", dataset_id, "--model", "logistic_regression", "--epochs", "1000000", "--detach"
    )
    assert descent.json("jobs", "cancel", cancel["id"])["status"] in ("cancelling", "cancelled")
    imported = descent.json("models", "import", str(model_file))
    assert descent.json("models", "delete", imported["id"]) == {"deleted": [imported["id"]]}
    # Before or after the subcommand, the common options work alike.
    assert (
        descent("-o", "json", "--url", descent.url, "jobs", "show", job_id).stdout
        == descent("jobs", "show", job_id, "--output", "json").stdout
    )


def test_unreachable_service_is_an_error(descent: Descent) -> None:
    failed = descent("--url", "http://127.0.0.1:9", "datasets", "list", code=1)
    assert failed.stderr.startswith("error: GET http://127.0.0.1:9/v1/datasets")


def test_server_commands_keep_their_options(tmp_path: Path) -> None:
    runner = CliRunner()
    serve = runner.invoke(cli, ["serve", "--help"]).stdout
    assert all(
        flag in serve for flag in ("--host", "--port", "--log-level", "critical|error|warning|info|debug")
    )
    assert "--hostname" in runner.invoke(cli, ["worker", "--help"]).stdout
    bad = runner.invoke(cli, ["serve", "--log-level", "loud"])
    assert bad.exit_code == 2 and "'loud' is not one of" in bad.stderr
    database = tmp_path / "fresh.db"
    migrated = subprocess.run(
        [str(DESCENT), "migrate"],
        env={"DESCENT_DATABASE_URL": f"sqlite:///{database}", "PATH": str(DESCENT.parent)},
        capture_output=True,
        text=True,
        timeout=STARTUP_S,
    )
    assert migrated.returncode == 0, migrated.stderr
    assert migrated.stdout == "the store's schema is up to date\n" and database.stat().st_size > 0
