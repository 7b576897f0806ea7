from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from service.store import Store, recall, remember

SCOPE = "POST /v1/jobs"


def test_a_new_key_is_recalled_as_none_then_as_remembered(store: Store) -> None:
    assert recall(store, "alice", SCOPE, "k1") is None

    stored = remember(store, "alice", SCOPE, "k1", "hash-a", "job_1", 202)

    assert stored == ("hash-a", "job_1", 202)
    request_hash, resource_id, status_code = recall(store, "alice", SCOPE, "k1") or ("", "", 0)
    assert (request_hash, resource_id, status_code) == ("hash-a", "job_1", 202)


def test_the_first_remembered_entry_wins(store: Store) -> None:
    remember(store, "alice", SCOPE, "k1", "hash-a", "job_1", 202)

    second = remember(store, "alice", SCOPE, "k1", "hash-b", "job_2", 202)

    assert second == ("hash-a", "job_1", 202)
    assert recall(store, "alice", SCOPE, "k1") == ("hash-a", "job_1", 202)


def test_keys_are_separate_per_owner_and_scope(store: Store) -> None:
    remember(store, "alice", SCOPE, "k1", "h1", "job_1", 202)
    remember(store, "bob", SCOPE, "k1", "h2", "job_2", 202)
    remember(store, "alice", "POST /v1/datasets", "k1", "h3", "ds_3", 201)

    assert recall(store, "alice", SCOPE, "k1") == ("h1", "job_1", 202)
    assert recall(store, "bob", SCOPE, "k1") == ("h2", "job_2", 202)
    assert recall(store, "alice", "POST /v1/datasets", "k1") == ("h3", "ds_3", 201)


def test_concurrent_remembers_agree_on_one_winner(store: Store) -> None:
    def attempt(i: int) -> tuple[str, str, int]:
        return tuple(remember(store, "alice", SCOPE, "race", f"hash-{i}", f"job_{i}", 202))  # type: ignore[return-value]

    with ThreadPoolExecutor(max_workers=6) as pool:
        results = list(pool.map(attempt, range(6)))

    assert len(set(results)) == 1
    assert recall(store, "alice", SCOPE, "race") == results[0]


def test_empty_or_long_keys_are_refused(store: Store) -> None:
    with pytest.raises(ValueError, match="1 to 255 characters"):
        remember(store, "alice", SCOPE, "", "h", "job_1", 202)
    with pytest.raises(ValueError, match="got 256"):
        remember(store, "alice", SCOPE, "k" * 256, "h", "job_1", 202)
