"""``job.follow()`` gives every epoch exactly once across dropped connections and restarts of the service."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from descent_client import Client, EndUpdate, EpochUpdate, StatusUpdate, Update
from tests.descent_client.proxy import Proxy
from tests.processes import wait_until
from tests.service.test_jobs_e2e import ServiceProcess
from tests.timing import JOB_S, STARTUP_S

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

# Small mini-batches over 300 samples, and more epochs than any test waits for: each test interrupts
# the follow while the job runs, then cancels the job, so that its length does not depend on the
# machine's speed.
EPOCHS = 1_000_000
CONFIG: dict[str, Any] = {
    "model": {"type": "mlp", "hidden_layers": [12], "activation": "tanh"},
    "optimizer": {"name": "adam", "learning_rate": 0.01},
    "batch_size": 8,
    "validation_fraction": 0.2,
    "seed": 11,
}


class Follower(threading.Thread):
    """Follows a job in the background, keeping every update."""

    def __init__(self, client: Client, job_id: str) -> None:
        super().__init__(daemon=True)
        self.client, self.job_id = client, job_id
        self.updates: list[Update] = []
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            for update in self.client.jobs.follow(self.job_id):
                self.updates.append(update)
        except BaseException as exc:
            self.error = exc

    def epochs(self) -> list[int]:
        return [u.epoch for u in list(self.updates) if isinstance(u, EpochUpdate)]

    def resumed(self) -> bool:
        """Whether a second run of the job has started."""
        if self.error is not None:
            raise self.error
        runs = [u for u in list(self.updates) if isinstance(u, StatusUpdate) and u.status == "running"]
        return any(u.attempt >= 2 for u in runs)

    def wait_for_epoch(self, epoch: int) -> None:
        def reached() -> bool:
            if self.error is not None:
                raise self.error
            seen = self.epochs()
            return bool(seen) and seen[-1] >= epoch

        wait_until(reached, JOB_S, f"the follow of {self.job_id} to reach epoch {epoch}")

    def finish(self, timeout: float = JOB_S) -> list[Update]:
        self.join(timeout)
        assert not self.is_alive(), f"the follow of {self.job_id} did not end within {timeout} s"
        if self.error is not None:
            raise self.error
        return self.updates


def start_job(client: Client) -> str:
    dataset = client.datasets.generate("moons", n_samples=300, noise=0.2, seed=3)
    return client.jobs.create(dataset=dataset, epochs=EPOCHS, **CONFIG).id


@contextlib.contextmanager
def running_job(client: Client) -> Iterator[str]:
    """A job that runs until the test cancels it, and is cancelled if the test fails first: a job left
    running would hold the service's one worker, and the module's next test would wait for it forever."""
    job_id = start_job(client)
    try:
        yield job_id
    finally:
        with contextlib.suppress(Exception):
            if client.jobs.get(job_id).status not in ("succeeded", "failed", "cancelled"):
                client.jobs.cancel(job_id)


def assert_every_epoch_once(client: Client, job_id: str, updates: list[Update]) -> None:
    """Epochs 1 to the last one run, each once, with the history's metrics; one end, the last update."""
    seen = [u for u in updates if isinstance(u, EpochUpdate)]
    history = client.jobs.metrics(job_id)
    assert history.epochs[-1] > 100
    assert [u.epoch for u in seen] == list(range(1, history.epochs[-1] + 1))
    # Each epoch's metrics are those of the job's history (a resumed run recomputes the same values).
    assert [u.metrics.train_loss for u in seen] == history.train_loss
    assert [u.metrics.val_accuracy for u in seen] == history.val_accuracy
    assert isinstance(updates[-1], EndUpdate) and updates[-1].status == "cancelled"
    assert sum(isinstance(u, EndUpdate) for u in updates) == 1


@pytest.mark.parametrize("how", ["sigterm", "kill -9"])
def test_follow_survives_a_restart_of_the_service(service: ServiceProcess, how: str) -> None:
    with Client(service.url, reconnect_timeout=STARTUP_S) as client, running_job(client) as job_id:
        follower = Follower(client, job_id)
        follower.start()
        follower.wait_for_epoch(100)
        before = follower.epochs()[-1]
        if how == "sigterm":
            service.stop()
        else:
            service.kill_group()
        service.start(same_port=True)
        # The run may have gone on during the graceful shutdown: wait for the second run to train.
        wait_until(follower.resumed, 120, f"job {job_id} to run again after the restart")
        follower.wait_for_epoch(max(follower.epochs()[-1], before) + 50)
        client.jobs.cancel(job_id)
        updates = follower.finish()
        job = client.jobs.get(job_id)
        assert job.attempt >= 2
        assert_every_epoch_once(client, job_id, updates)
        runs = [u.attempt for u in updates if isinstance(u, StatusUpdate) and u.status == "running"]
        assert runs[0] == 1 and runs[-1] == job.attempt


def test_follow_survives_dropped_connections(service: ServiceProcess) -> None:
    proxy = Proxy(int(service.url.rsplit(":", 1)[1]))
    try:
        with Client(proxy.url, reconnect_timeout=STARTUP_S) as client, running_job(client) as job_id:
            prefix = f"GET /v1/jobs/{job_id}/events".encode()

            def streams() -> list[bytes]:
                return [r for r in list(proxy.requests) if r.startswith(prefix)]

            follower = Follower(client, job_id)
            follower.start()
            for cuts in range(3):
                # Cut only a follow that is streaming: it has (re)connected since the last cut and
                # received epochs through that connection.
                wait_until(lambda n=cuts: len(streams()) > n, JOB_S, "the follow to (re)connect")
                follower.wait_for_epoch(max(follower.epochs(), default=0) + 50)
                assert proxy.cut() >= 1
            wait_until(lambda: len(streams()) > 3, JOB_S, "the follow to reconnect")
            follower.wait_for_epoch(max(follower.epochs(), default=0) + 50)
            client.jobs.cancel(job_id)
            updates = follower.finish()
            assert_every_epoch_once(client, job_id, updates)
            assert len(streams()) >= 4
            assert any(b"last-event-id" in r.lower() for r in streams()[1:])
    finally:
        proxy.close()


def test_an_interrupted_follow_goes_on_where_it_stopped(service: ServiceProcess) -> None:
    with Client(service.url) as client, running_job(client) as job_id:
        follow = client.jobs.follow(job_id)
        first: list[Update] = []
        for update in follow:
            first.append(update)
            if isinstance(update, EpochUpdate) and update.epoch >= 100:
                break
        follow.close()  # as an exception (Ctrl-C) inside the iteration would
        stopped_at = follow.last_epoch
        assert isinstance(first[-1], EpochUpdate) and stopped_at == first[-1].epoch
        rest: list[Update] = []
        for update in follow:
            rest.append(update)
            if isinstance(update, EpochUpdate) and update.epoch == stopped_at + 100:
                client.jobs.cancel(job_id)
        assert_every_epoch_once(client, job_id, first + rest)
        # Another follow from the same point gives the same remainder.
        again = list(client.jobs.follow(job_id, since_epoch=stopped_at))
        epochs_again = [(u.epoch, u.metrics) for u in again if isinstance(u, EpochUpdate)]
        assert epochs_again == [(u.epoch, u.metrics) for u in rest if isinstance(u, EpochUpdate)]
