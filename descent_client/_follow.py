"""``Follow``: the iterator behind ``Client.jobs.follow`` and ``Client.jobs.wait``."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

from descent_client import _calls
from descent_client.events import FollowState, SSEDecoder, Update, history_rows

if TYPE_CHECKING:
    from descent_client._sync import Client


class Follow(Iterator[Update]):
    """The updates of a job: status changes, every epoch exactly once and in order, then the end.

    Reconnects with ``Last-Event-ID`` after a dropped connection or a restart of the service (for up to
    the client's ``reconnect_timeout`` at a stretch). Interrupted (e.g. by KeyboardInterrupt), it can be
    iterated again and goes on where it stopped. ``last_event_id`` and ``last_epoch`` say where it is.
    """

    def __init__(
        self, client: Client, job_id: str, state: FollowState, deadline: float | None = None
    ) -> None:
        self._client, self.job_id, self.state, self.deadline = client, job_id, state, deadline
        self._updates: Iterator[Update] | None = None

    @property
    def last_event_id(self) -> int:
        return self.state.last_event_id

    @property
    def last_epoch(self) -> int:
        return self.state.last_epoch

    def __iter__(self) -> Follow:
        return self

    def __next__(self) -> Update:
        if self._updates is None:
            self._updates = self._run()
        try:
            return next(self._updates)
        except StopIteration:
            raise
        except BaseException:
            self._updates = None  # the next iteration reconnects from the state
            raise

    def close(self) -> None:
        if self._updates is not None:
            self._updates.close()  # type: ignore[attr-defined]
            self._updates = None

    def _run(self) -> Iterator[Update]:
        state, failing_since, attempt = self.state, None, 0
        while not state.done:
            try:
                call = _calls.job_events(self.job_id, state.last_event_id)
                with self._client.stream_lines(call, _calls.read_timeout(self.deadline)) as lines:
                    failing_since, attempt = None, 0
                    decoder = SSEDecoder()
                    for line in lines:
                        event = decoder.feed(line)
                        if event is None or event.id <= state.last_event_id:
                            continue
                        plan = state.plan(event)
                        yield from plan.now
                        yield from state.epoch_updates(event.id, plan.rows)
                        if plan.fetch:
                            history = self._client.json(_calls.job_metrics(self.job_id, state.last_epoch))
                            yield from state.epoch_updates(event.id, history_rows(history, plan.upto))
                        yield from plan.after
                        state.commit(event)
                        if state.done:
                            return
                # The service closed the stream before the end (e.g. it is shutting down).
                raise _calls.StreamClosed(f"the event stream of job {self.job_id} closed before its end")
            except _calls.RECONNECTABLE as exc:
                failing_since = failing_since or time.monotonic()
                time.sleep(
                    _calls.reconnect_delay(
                        self.job_id,
                        exc,
                        failing_since,
                        attempt,
                        self._client.reconnect_timeout,
                        self.deadline,
                    )
                )
                attempt += 1
