"""The Dockerfile and docker-compose.yml: pinned images, a dependency layer, the health check, limits.

Docker cannot pull images on the test machines, so the image is checked by reading the Dockerfile
and running its health check command against a real ``descent serve``; the compose services' commands
run in ``test_compose.py``.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.stack import COMPOSE_FILE, ROOT, read_compose
from tests.processes import free_port
from tests.service.test_jobs_e2e import ServiceProcess
from tests.timing import REQUEST_S

DOCKERFILE = ROOT / "Dockerfile"
# An exact release: name:1.2.3 with an optional variant suffix (-slim-bookworm, -alpine).
EXACT_TAG = re.compile(r"^[\w./-]+:\d+\.\d+(\.\d+)?(-[\w.-]+)?(@sha256:[0-9a-f]{64})?$")
MiB = 1024 * 1024


def instructions(path: Path = DOCKERFILE) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of each line of a Dockerfile, continuation lines joined."""
    joined = re.sub(r"\\\n", " ", path.read_text())
    found = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            found.append((keyword.upper(), rest.strip()))
    return found


def compose_document() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text())
    return document


def memory_bytes(text: str) -> int:
    """A compose memory size (``512m``, ``4g``, ``1073741824``) in bytes."""
    match = re.fullmatch(r"(\d+)([bkmg]?)b?", str(text).strip().lower())
    assert match, f"unreadable memory size {text!r}"
    return int(match[1]) * {"": 1, "b": 1, "k": 1024, "m": MiB, "g": 1024 * MiB}[match[2]]


def test_base_images_are_pinned_to_exact_versions() -> None:
    bases = [args.split()[0] for keyword, args in instructions() if keyword == "FROM"]
    assert bases, "the Dockerfile has no FROM"
    for image in bases:
        assert EXACT_TAG.match(image), f"FROM {image} is not pinned to an exact version"
    for name, spec in compose_document()["services"].items():
        if "image" in spec and not spec["image"].startswith("descent:"):
            assert EXACT_TAG.match(spec["image"]), (
                f"service {name} uses {spec['image']}, not an exact version"
            )


def test_dependencies_are_installed_in_a_layer_before_the_source() -> None:
    steps = instructions()
    build = steps[: next(i for i, (k, _) in enumerate(steps) if k == "FROM" and i > 0)]
    copies = [(i, args) for i, (k, args) in enumerate(build) if k == "COPY"]
    source = min(i for i, args in copies if args.split()[0] in ("engine", "service", "."))
    installs = [(i, args) for i, (k, args) in enumerate(build) if k == "RUN" and "pip install" in args]
    before = [args for i, args in installs if i < source]
    after = [args for i, args in installs if i > source]
    assert before, "no dependency installation before the source is copied"
    # What the dependency layer depends on: the project's metadata and the constraints, nothing else.
    first_install = min(i for i, _ in installs)
    copied_before = {part for i, args in copies if i < first_install for part in args.split()[:-1]}
    assert copied_before == {"pyproject.toml", "requirements/constraints.txt"}, copied_before
    assert all("-c requirements/constraints.txt" in args for args in before + after)
    # The project itself is installed without resolving dependencies again.
    assert after and all("--no-deps" in args for args in after), after


def test_the_health_check_probes_the_configured_port(tmp_path: Path) -> None:
    (health,) = [args for keyword, args in instructions() if keyword == "HEALTHCHECK"]
    command: list[str] = json.loads(health[health.index("CMD") + 3 :].strip())
    assert command[0] == "python"
    argv = [sys.executable, *command[1:]]
    with ServiceProcess(tmp_path, workers=0) as service:
        port = int(service.url.rsplit(":", 1)[1])

        def probe(env_port: int) -> int:
            env = {**os.environ, "DESCENT_PORT": str(env_port)}
            return subprocess.run(
                argv, env=env, capture_output=True, timeout=REQUEST_S, check=False
            ).returncode

        assert probe(port) == 0
        assert probe(free_port()) != 0  # nothing there: unhealthy
    # And the compose API service names its port in DESCENT_PORT, the one the check reads.
    api = read_compose()["api"]
    assert "--port" not in api.command, shlex.join(api.command)
    published = compose_document()["services"]["api"]["ports"]
    assert [str(p).rsplit(":", 1)[-1] for p in published] == [api.environment["DESCENT_PORT"]]


def test_the_api_is_published_on_the_loopback_interface_only() -> None:
    for name, spec in compose_document()["services"].items():
        for mapping in spec.get("ports", []):
            text = str(mapping) if not isinstance(mapping, dict) else mapping.get("host_ip", "")
            assert text.startswith("127.0.0.1:") or text == "127.0.0.1", f"{name} publishes {mapping}"


def test_workers_have_a_memory_limit_above_their_job_memory_cap() -> None:
    worker = compose_document()["services"]["worker"]
    limit = memory_bytes(worker["deploy"]["resources"]["limits"]["memory"])
    cap = int(read_compose()["worker"].environment["DESCENT_WORKER_MEMORY_MB"]) * MiB
    assert cap > 0, "the workers run without a memory cap"
    # The cap is on what a job may allocate beyond the worker's own footprint (under 1 GiB).
    assert cap + 512 * MiB <= limit, (cap, limit)


@pytest.mark.parametrize(("text", "expected"), [("4g", 4 << 30), ("512m", 512 << 20), ("1024", 1024)])
def test_memory_sizes_are_read_like_compose_reads_them(text: str, expected: int) -> None:
    assert memory_bytes(text) == expected
