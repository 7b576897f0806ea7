"""Idempotency keys: reserved before the resource exists, completed with it, released when it fails."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import numpy as np
import pytest

from service.errors import Conflict
from service.store import Claim, Store, create_dataset, create_job, get_dataset, recall, release, reserve
from service.store.db import utcnow
from tests.service.store.factories import make_dataset

SCOPE = "POST /v1/jobs"


def claim_of(outcome: object) -> Claim:
    assert isinstance(outcome, Claim), outcome
    return outcome


def test_a_key_is_free_then_pending_then_done_with_its_job(store: Store) -> None:
    dataset = make_dataset(store)
    assert recall(store, "alice", SCOPE, "k1") is None

    claim = claim_of(reserve(store, "alice", SCOPE, "k1", "hash-a", 202))
    assert recall(store, "alice", SCOPE, "k1") == ("hash-a", None, None)
    assert reserve(store, "alice", SCOPE, "k1", "hash-a", 202) == ("hash-a", None, None)

    job = create_job(
        store,
        owner="default",
        config={},
        config_hash="c" * 64,
        dataset_id=dataset.id,
        max_queued=10,
        claim=claim,
    )
    entry = recall(store, "alice", SCOPE, "k1")
    assert entry == ("hash-a", job.id, 202) and entry is not None and not entry.pending
    assert reserve(store, "alice", SCOPE, "k1", "hash-b", 202) == ("hash-a", job.id, 202)


def test_a_failed_creation_completes_nothing_and_release_frees_the_key(store: Store) -> None:
    claim = claim_of(reserve(store, "alice", SCOPE, "k1", "hash-a", 202))
    # The dataset is gone: the creating transaction fails, and takes the completion with it.
    with pytest.raises(Exception, match="not found"):
        create_job(
            store, config={}, config_hash="c" * 64, dataset_id="ds_missing", max_queued=10, claim=claim
        )
    assert recall(store, "alice", SCOPE, "k1") == ("hash-a", None, None)

    release(store, claim)

    assert recall(store, "alice", SCOPE, "k1") is None
    claim_of(reserve(store, "alice", SCOPE, "k1", "hash-a", 202))


def test_a_reservation_taken_over_cannot_complete_and_its_resource_is_not_stored(store: Store) -> None:
    abandoned = claim_of(reserve(store, "alice", "POST /v1/datasets", "k1", "h", 201))
    # Presumed abandoned (its process died): a later request takes the key over.
    successor = claim_of(
        reserve(store, "alice", "POST /v1/datasets", "k1", "h", 201, stale_before=utcnow() + timedelta(1))
    )
    X, y = np.zeros((2, 1)), np.array([0, 1])

    with pytest.raises(Conflict, match="reservation of idempotency key 'k1' was lost"):
        create_dataset(store, owner="alice", name="late", X=X, y=y, task="binary", claim=abandoned)
    release(store, abandoned)  # not its reservation any more: a no-op

    record = create_dataset(store, owner="alice", name="new", X=X, y=y, task="binary", claim=successor)
    assert recall(store, "alice", "POST /v1/datasets", "k1") == ("h", record.id, 201)
    assert get_dataset(store, record.id).name == "new"


def test_a_recent_pending_reservation_is_not_taken_over(store: Store) -> None:
    claim_of(reserve(store, "alice", SCOPE, "k1", "h", 202))
    outcome = reserve(store, "alice", SCOPE, "k1", "h", 202, stale_before=utcnow() - timedelta(minutes=5))
    assert outcome == ("h", None, None)


def test_keys_are_separate_per_owner_and_scope(store: Store) -> None:
    claims = [
        reserve(store, "alice", SCOPE, "k1", "h1", 202),
        reserve(store, "bob", SCOPE, "k1", "h2", 202),
        reserve(store, "alice", "POST /v1/datasets", "k1", "h3", 201),
    ]
    assert all(isinstance(claim, Claim) for claim in claims)


def test_of_concurrent_reservations_exactly_one_wins(store: Store) -> None:
    def attempt(i: int) -> Claim | tuple[str, str | None, int | None]:
        return reserve(store, "alice", SCOPE, "race", f"hash-{i}", 202)

    with ThreadPoolExecutor(max_workers=8) as pool:
        outcomes = list(pool.map(attempt, range(8)))

    winners = [o for o in outcomes if isinstance(o, Claim)]
    assert len(winners) == 1
    winner_hash = f"hash-{outcomes.index(winners[0])}"
    assert all(o == (winner_hash, None, None) for o in outcomes if not isinstance(o, Claim))


def test_empty_or_long_keys_are_refused(store: Store) -> None:
    with pytest.raises(ValueError, match="1 to 255 characters"):
        reserve(store, "alice", SCOPE, "", "h", 202)
    with pytest.raises(ValueError, match="got 256"):
        reserve(store, "alice", SCOPE, "k" * 256, "h", 202)
