"""``descent keys`` and ``descent serve`` as processes: keys printed once and stored hashed, a real
server that needs them, and a server that refuses to listen beyond loopback without them."""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from descent_client import Client
from descent_client.errors import Unauthorized
from service.services import identity
from tests.processes import free_port
from tests.service.test_jobs_e2e import ServiceProcess
from tests.timing import REQUEST_S, STARTUP_S

DESCENT = Path(sys.executable).parent / "descent"
KEY = re.compile(r"dsk_[0-9a-f]{24}[A-Za-z0-9_-]{43}")


def descent(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {**os.environ, "DESCENT_DATABASE_URL": f"sqlite:///{tmp_path / 'descent.db'}", **env}
    return subprocess.run(
        [str(DESCENT), *args], env=environ, cwd=tmp_path, capture_output=True, text=True, timeout=STARTUP_S
    )


def create_key(tmp_path: Path, *args: str) -> str:
    done = descent(tmp_path, "keys", "create", *args)
    assert done.returncode == 0, done.stderr
    lines = (done.stderr + done.stdout).strip().splitlines()
    assert KEY.fullmatch(lines[-1]), lines  # alone on the last line
    assert done.stdout.strip() == lines[-1]  # and the only thing on stdout, for `| tail -1` and $(...)
    return lines[-1]


def test_keys_are_printed_once_listed_without_secret_and_stored_hashed(tmp_path: Path) -> None:
    alice = create_key(tmp_path, "--owner", "alice", "--note", "laptop")
    limits = "--quota-jobs 3 --rate-limit 5/second --rate-limit-burst 10"
    admin = create_key(tmp_path, "--owner", "ops", "--admin", *limits.split())
    listing = descent(tmp_path, "keys", "list")
    assert listing.returncode == 0, listing.stderr
    assert "alice" in listing.stdout and "laptop" in listing.stdout and "ops" in listing.stdout
    as_json = descent(tmp_path, "keys", "list", "--json")
    for key in (alice, admin):
        for text in (listing.stdout, as_json.stdout):
            assert key not in text and key[28:] not in text
    # The store, dumped, holds neither key nor its secret part.
    with sqlite3.connect(tmp_path / "descent.db") as connection:
        dump = "\n".join(connection.iterdump())
    raw = (tmp_path / "descent.db").read_bytes()
    for key in (alice, admin):
        assert key not in dump and key[28:] not in dump
        assert key.encode() not in raw and key[28:].encode() not in raw
    [ops] = [d for d in json.loads(as_json.stdout) if d["owner"] == "ops"]
    assert ops["admin"] and ops["limits"] == {"jobs": 3, "rate_limit": "5/second", "rate_limit_burst": 10}


def test_revoke_and_its_errors(tmp_path: Path) -> None:
    key = create_key(tmp_path, "--owner", "alice")
    key_id = "key_" + key[4:28]
    done = descent(tmp_path, "keys", "revoke", key_id)
    assert done.returncode == 0 and key_id in done.stdout, done.stderr
    [listed] = json.loads(descent(tmp_path, "keys", "list", "--json").stdout)
    assert listed["id"] == key_id and listed["revoked_at"] is not None
    missing = descent(tmp_path, "keys", "revoke", "key_" + "0" * 24)
    assert missing.returncode != 0 and "not found" in missing.stderr
    bad_owner = descent(tmp_path, "keys", "create", "--owner", "no spaces")
    assert bad_owner.returncode != 0 and "owner must be" in bad_owner.stderr
    bad_rate = descent(tmp_path, "keys", "create", "--owner", "a", "--rate-limit", "lots")
    assert bad_rate.returncode != 0 and "rate limit must look like" in bad_rate.stderr


@pytest.mark.parametrize("host", ["0.0.0.0", "::"])
def test_serve_beyond_loopback_without_auth_refuses_to_start(tmp_path: Path, host: str) -> None:
    done = descent(tmp_path, "serve", "--host", host, "--port", str(free_port()), DESCENT_AUTH="none")
    assert done.returncode != 0
    assert "DESCENT_AUTH=keys" in done.stderr and "descent keys create" in done.stderr


@pytest.fixture(scope="module")
def keyed_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServiceProcess, str]]:
    workdir = tmp_path_factory.mktemp("keyed")
    key = create_key(workdir, "--owner", "alice")
    with ServiceProcess(workdir, auth="keys", workers=0) as running:
        yield running, key


def test_a_real_server_needs_the_key(keyed_server: tuple[ServiceProcess, str]) -> None:
    server, key = keyed_server
    with httpx.Client(base_url=server.url, timeout=REQUEST_S) as http:
        assert http.get("/healthz").status_code == 200
        refused = http.get("/v1/datasets")
        assert refused.status_code == 401 and refused.headers["www-authenticate"].startswith("Bearer")
        assert http.get("/v1/datasets", headers={"Authorization": f"Bearer {key}"}).status_code == 200
    assert key not in server.log_path.read_text() and key[28:] not in server.log_path.read_text()


def test_the_python_client_and_the_cli_send_the_key(
    keyed_server: tuple[ServiceProcess, str], tmp_path: Path
) -> None:
    server, key = keyed_server
    with Client(server.url, api_key=key) as client:
        assert client.datasets.list().items == []
    with Client(server.url, api_key=identity.generate()[1]) as stranger, pytest.raises(Unauthorized):
        stranger.datasets.list()
    listed = descent(tmp_path, "datasets", "list", "--url", server.url, DESCENT_API_KEY=key)
    assert listed.returncode == 0, listed.stderr
    refused = descent(tmp_path, "datasets", "list", "--url", server.url)
    assert refused.returncode != 0 and "API key" in refused.stderr
