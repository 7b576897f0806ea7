"""Authentication and owner scoping, in process: DESCENT_AUTH=keys, keys for two owners and an admin."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from pydantic import SecretStr

from service.services import identity
from tests.service.conftest import Client, assert_problem
from tests.service.identity.conftest import Keys, make_keys

XOR = {"name": "xor", "generator": {"kind": "xor", "n_samples": 40, "seed": 1}}
JOB = {
    "dataset": {"generator": {"kind": "xor", "n_samples": 40, "seed": 1}},
    "model": {"type": "logistic_regression"},
    "optimizer": {"name": "sgd", "learning_rate": 0.1},
    "epochs": 2,
}


@pytest.fixture
def client(keyed: Callable[..., Client]) -> Client:
    return keyed()


@pytest.fixture
def keys(client: Client) -> Keys:
    return make_keys(client)


def as_(key: str) -> dict[str, Any]:
    return {"headers": Keys.header(key)}


def assert_unauthorized(response: Any, *fragments: str) -> None:
    assert_problem(response, 401, *fragments)
    assert response.headers["www-authenticate"].startswith("Bearer")


def test_a_request_without_a_key_is_401_with_www_authenticate(client: Client, keys: Keys) -> None:
    assert_unauthorized(client.get("/v1/datasets"), "Authorization: Bearer")
    assert_unauthorized(client.post("/v1/activations/relu", json={"x": [1.0]}), "Authorization: Bearer")


@pytest.mark.parametrize(
    "header",
    [
        "Basic YWxpY2U6c2VjcmV0",
        "Bearer",
        "Bearer dsk_short",
        "Bearer not-a-key-at-all",
        "Bearer dsk_" + "0" * 24 + "!" * 43,
        "dsk_" + "0" * 67,
    ],
)
def test_a_malformed_key_is_401(client: Client, keys: Keys, header: str) -> None:
    assert_unauthorized(client.get("/v1/datasets", headers={"Authorization": header}))


def test_an_unknown_or_revoked_key_is_401(client: Client, keys: Keys) -> None:
    unknown = identity.generate()[1]
    assert_unauthorized(client.get("/v1/datasets", **as_(unknown)), "not known")
    # The right id with another secret is just as unknown.
    forged = keys.alice[:28] + ("A" if keys.alice[28] != "A" else "B") + keys.alice[29:]
    assert_unauthorized(client.get("/v1/datasets", **as_(forged)), "not known")
    assert_unauthorized(client.get("/v1/datasets", **as_(keys.revoked)), "revoked")


def test_a_key_revoked_while_in_use_stops_working(client: Client, keys: Keys) -> None:
    assert client.get("/v1/datasets", **as_(keys.bob)).status_code == 200
    bob_id = "key_" + keys.bob[4:28]
    identity.revoke(client.app.state.store, bob_id)
    assert_unauthorized(client.get("/v1/datasets", **as_(keys.bob)), "revoked")


def test_open_paths_need_no_key(client: Client, keys: Keys) -> None:
    for path in ("/healthz", "/readyz", "/openapi.json", "/docs", "/redoc", "/", "/metrics"):
        assert client.get(path).status_code == 200, path


def test_metrics_can_be_kept_for_admins(keyed: Callable[..., Client]) -> None:
    client = keyed(metrics_auth=True)
    keys = make_keys(client)
    assert_unauthorized(client.get("/metrics"))
    assert_problem(client.get("/metrics", **as_(keys.alice)), 403, "admin key")
    assert client.get("/metrics", **as_(keys.admin)).status_code == 200


def _create_dataset(client: Client, key: str) -> str:
    response = client.post("/v1/datasets", json=XOR, **as_(key))
    assert response.status_code == 201, response.text
    dataset_id: str = response.json()["id"]
    return dataset_id


def test_another_owners_dataset_is_404_exactly_like_a_missing_one(client: Client, keys: Keys) -> None:
    dataset_id = _create_dataset(client, keys.alice)
    missing_id = "ds_" + "0" * 24
    for suffix, method in (("", "GET"), ("/data", "GET"), ("", "DELETE")):
        theirs = client.request(method, f"/v1/datasets/{dataset_id}{suffix}", **as_(keys.bob))
        missing = client.request(method, f"/v1/datasets/{missing_id}{suffix}", **as_(keys.bob))
        body = assert_problem(theirs, 404)
        assert body["detail"] == assert_problem(missing, 404)["detail"].replace(missing_id, dataset_id)
        assert "alice" not in theirs.text
    assert client.get(f"/v1/datasets/{dataset_id}", **as_(keys.alice)).status_code == 200


def test_lists_show_only_ones_own_and_admins_see_all(client: Client, keys: Keys) -> None:
    alice_ds = _create_dataset(client, keys.alice)
    bob_ds = _create_dataset(client, keys.bob)

    def ids(key: str, query: str = "") -> list[str]:
        response = client.get(f"/v1/datasets{query}", **as_(key))
        assert response.status_code == 200, response.text
        return [item["id"] for item in response.json()["items"]]

    assert ids(keys.alice) == [alice_ds]
    assert ids(keys.bob) == [bob_ds]
    assert ids(keys.admin) == [bob_ds, alice_ds]
    assert ids(keys.admin, "?owner=alice") == [alice_ds]
    assert ids(keys.admin, "?owner=nobody") == []
    assert ids(keys.alice, "?owner=alice") == [alice_ds]
    assert_problem(client.get("/v1/datasets?owner=bob", **as_(keys.alice)), 403, "admin key")
    # An admin reaches any owner's resource by id, and creates under its own owner.
    assert client.get(f"/v1/datasets/{alice_ds}", **as_(keys.admin)).status_code == 200
    admin_ds = _create_dataset(client, keys.admin)
    assert ids(keys.admin, "?owner=ops") == [admin_ds]


def test_jobs_models_and_events_are_scoped(client: Client, keys: Keys) -> None:
    response = client.post("/v1/jobs", json=JOB, **as_(keys.alice))
    assert response.status_code == 202, response.text
    job_id = response.json()["id"]
    dataset_id = response.json()["config"]["dataset_id"]
    for method, path in (
        ("GET", f"/v1/jobs/{job_id}"),
        ("GET", f"/v1/jobs/{job_id}/metrics"),
        ("GET", f"/v1/jobs/{job_id}/events"),
        ("GET", f"/v1/jobs/{job_id}/snapshot"),
        ("POST", f"/v1/jobs/{job_id}/cancel"),
        ("DELETE", f"/v1/jobs/{job_id}"),
        ("GET", f"/v1/datasets/{dataset_id}"),
    ):
        assert_problem(client.request(method, path, **as_(keys.bob)), 404, "not found")
    assert client.get("/v1/jobs", **as_(keys.bob)).json()["items"] == []
    # Bob cannot train on alice's dataset either.
    on_hers = {**{k: v for k, v in JOB.items() if k != "dataset"}, "dataset_id": dataset_id}
    assert_problem(client.post("/v1/jobs", json=on_hers, **as_(keys.bob)), 404, dataset_id)
    assert client.post(f"/v1/jobs/{job_id}/cancel", **as_(keys.alice)).status_code == 202


def test_idempotency_keys_are_per_owner(client: Client, keys: Keys) -> None:
    headers = {"Idempotency-Key": "same-key"}
    first = client.post("/v1/datasets", json=XOR, headers={**headers, **Keys.header(keys.alice)})
    second = client.post("/v1/datasets", json=XOR, headers={**headers, **Keys.header(keys.bob)})
    assert (first.status_code, second.status_code) == (201, 201)
    assert first.json()["id"] != second.json()["id"]
    replay = client.post("/v1/datasets", json=XOR, headers={**headers, **Keys.header(keys.bob)})
    assert (replay.status_code, replay.json()["id"]) == (200, second.json()["id"])


def test_with_auth_none_every_request_is_the_single_user(make_client: Callable[..., Client]) -> None:
    client = make_client()
    response = client.post("/v1/datasets", json=XOR)
    assert response.status_code == 201, response.text
    assert [d["id"] for d in client.get("/v1/datasets").json()["items"]] == [response.json()["id"]]
    assert "ratelimit-limit" not in response.headers


def test_the_bootstrap_key_is_an_admin_key(keyed: Callable[..., Client]) -> None:
    key = identity.generate()[1]
    client = keyed(bootstrap_key=key)
    assert client.get("/v1/datasets", **as_(key)).status_code == 200
    [record] = identity.list_documents(client.app.state.store)
    assert (record["owner"], record["admin"], record["id"]) == ("admin", True, "key_" + key[4:28])


def test_a_bootstrap_key_that_is_not_a_key_stops_the_start(client: Client) -> None:
    settings = client.app.state.settings.model_copy(update={"bootstrap_key": SecretStr("hunter2")})
    with pytest.raises(ValueError, match="DESCENT_BOOTSTRAP_KEY is not an API key"):
        identity.ensure_bootstrap_key(client.app.state.store, settings)


def test_the_access_log_names_the_owner_and_key_id_never_the_key(
    client: Client, keys: Keys, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level("INFO", logger="descent.access"):
        client.get("/v1/datasets", **as_(keys.bob))
    [record] = [r for r in caplog.records if r.name == "descent.access"]
    assert (record.owner, record.key_id) == ("bob", "key_" + keys.bob[4:28])  # type: ignore[attr-defined]
    assert keys.bob not in caplog.text and keys.bob[28:] not in caplog.text


def test_key_creation_revocation_and_deletions_are_audited(
    client: Client, keys: Keys, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level("INFO", logger="descent.audit"):
        new = identity.create(client.app.state.store, owner="carol")
        identity.revoke(client.app.state.store, new.record.id)
        dataset_id = _create_dataset(client, keys.alice)
        assert client.request("DELETE", f"/v1/datasets/{dataset_id}", **as_(keys.alice)).status_code == 204
    audit = [(r.getMessage(), getattr(r, "owner", None)) for r in caplog.records if r.name == "descent.audit"]
    assert audit == [("key created", "carol"), ("key revoked", "carol"), ("dataset deleted", "alice")]
    assert new.key not in caplog.text
