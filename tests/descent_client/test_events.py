"""The event-stream bookkeeping of ``follow``: parsing, filling gaps from the history, no repeats."""

from __future__ import annotations

from typing import Any

from descent_client.events import EndUpdate, FollowState, Plan, ServerEvent, SSEDecoder, history_rows


def decode(text: str) -> list[ServerEvent]:
    decoder = SSEDecoder()
    events = [decoder.feed(line) for line in text.split("\n")]
    return [event for event in events if event is not None]


def test_decoder_skips_comments_and_joins_data_lines() -> None:
    text = ': keep-alive\n\nid: 7\nevent: status\ndata: {"status":\ndata: "running", "attempt": 1}\n\n'
    assert decode(text) == [ServerEvent(7, "status", {"status": "running", "attempt": 1})]
    # An event is complete only at its blank line.
    assert decode('id: 8\nevent: end\ndata: {"status": "succeeded"}') == []


def progress(event_id: int, epoch: int, metrics: dict[str, Any] | None = None) -> ServerEvent:
    data = {"epoch": epoch, "progress": {"epoch": epoch, "total_epochs": 10, "eta_s": 1.5, "elapsed_s": 2.0}}
    return ServerEvent(event_id, "progress", {**data, "metrics": metrics or {"train_loss": 0.5}})


HISTORY = {
    "epochs": [1, 2, 3, 4, 5],
    "train_loss": [0.9, 0.8, 0.7, 0.6, 0.5],
    "val_loss": [1.0, 0.9, 0.8, 0.7, 0.6],
    "total_points": 5,
}


def test_the_next_epoch_comes_from_the_event_and_a_gap_from_the_history() -> None:
    state = FollowState()
    plan = state.plan(progress(1, 1, {"train_loss": 0.9}))
    assert not plan.fetch and plan.rows == [(1, {"train_loss": 0.9})]
    (first,) = state.epoch_updates(1, plan.rows)
    assert (first.epoch, first.total_epochs, first.eta_s, first.metrics.train_loss) == (1, 10, 1.5, 0.9)
    state.commit(progress(1, 1))

    plan = state.plan(progress(2, 4))
    assert plan.fetch and plan.upto == 4
    rows = history_rows(HISTORY, plan.upto)
    assert [epoch for epoch, _ in rows] == [1, 2, 3, 4]  # epoch 5 is left for its own event
    updates = list(state.epoch_updates(2, rows))
    assert [u.epoch for u in updates] == [2, 3, 4]  # epoch 1 was given already
    assert [u.metrics.val_loss for u in updates] == [0.9, 0.8, 0.7]
    assert state.last_epoch == 4 and state.last_event_id == 1


def test_epochs_recomputed_by_a_resumed_run_are_not_given_again() -> None:
    state = FollowState(last_epoch=4)
    plan = state.plan(progress(9, 3))
    assert plan.rows == [] and not plan.fetch
    (fifth,) = state.epoch_updates(9, history_rows(HISTORY, None))
    assert (fifth.epoch, fifth.metrics.train_loss, fifth.metrics.val_loss) == (5, 0.5, 0.6)
    assert list(state.epoch_updates(10, history_rows(HISTORY, None))) == []


def test_the_end_fills_the_last_epochs_then_ends() -> None:
    state = FollowState(last_epoch=3)
    end = ServerEvent(
        12, "end", {"status": "failed", "model_id": "mdl_1", "error": {"type": "diverged", "detail": "x"}}
    )
    plan = state.plan(end)
    assert plan.fetch and plan.upto is None
    assert [u.epoch for u in state.epoch_updates(12, history_rows(HISTORY, plan.upto))] == [4, 5]
    (last,) = plan.after
    assert isinstance(last, EndUpdate) and not last.succeeded
    assert last.error is not None and last.error.type == "diverged"
    state.commit(end)
    assert state.done and state.last_event_id == 12


def test_wait_ignores_progress() -> None:
    state = FollowState(epochs=False)
    plan = state.plan(progress(3, 5))
    assert plan.rows == [] and not plan.fetch
    assert not state.plan(ServerEvent(4, "end", {"status": "succeeded"})).fetch


def test_history_is_read_at_most_once_per_fetch_interval() -> None:
    state = FollowState(fetch_interval=3600)
    assert state.plan(progress(1, 3)).fetch
    list(state.epoch_updates(1, history_rows(HISTORY, 3)))
    # Soon after, a gap waits for the end (or a later event) instead of another read...
    assert state.plan(progress(2, 5)) == Plan()
    # ...but the next epoch, carried by its event, needs no read.
    assert state.plan(progress(3, 4, {"train_loss": 0.6})).rows == [(4, {"train_loss": 0.6})]
    assert state.plan(ServerEvent(4, "end", {"status": "succeeded"})).fetch
