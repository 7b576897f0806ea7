"""``descent train`` on a terminal: a pseudo-terminal shows the live progress bar advance, and Ctrl-C
asks whether to cancel the job or detach from it."""

from __future__ import annotations

import contextlib
import fcntl
import os
import pty
import re
import signal
import struct
import subprocess
import sys
import termios
import threading
from pathlib import Path

import pytest

from descent_client import Client
from tests.processes import wait_until
from tests.service.test_jobs_e2e import ServiceProcess
from tests.timing import JOB_S, REQUEST_S, STARTUP_S

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

DESCENT = Path(sys.executable).with_name("descent")
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07|\r")
# Longer than any test waits: each one interrupts or cancels the job.
LONG_TRAINING = ["moons:n=300,seed=3", "--optimizer", "adam", "--lr", "0.01", "--batch-size", "8"]


def _controlling_terminal() -> None:
    """In the child: make the pseudo-terminal (its stdin) the controlling terminal, as a shell would."""
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)
    with contextlib.suppress(OSError, AttributeError):
        import ctypes

        ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG: die with the test


class Terminal:
    """A command run on a 160×40 pseudo-terminal, its screen output collected as text."""

    def __init__(self, args: list[str], url: str) -> None:
        master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 160, 0, 0))
        env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "FORCE_COLOR", "TTY_COMPATIBLE")}
        env.update(DESCENT_URL=url, TERM="xterm-256color", COLUMNS="160", LINES="40")
        self.process = subprocess.Popen(
            [str(DESCENT), *args],
            stdin=slave,
            stdout=slave,
            stderr=slave,
            env=env,
            start_new_session=True,
            preexec_fn=_controlling_terminal,
        )
        os.close(slave)
        self.master = master
        self.raw = b""
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while True:
            try:
                chunk = os.read(self.master, 65536)
            except OSError:
                return
            if not chunk:
                return
            self.raw += chunk

    @property
    def text(self) -> str:
        return ANSI.sub("\n", self.raw.decode("utf-8", errors="replace"))

    def epochs(self) -> list[int]:
        """Every ``epoch N/T`` the bar has drawn, in order."""
        return [int(n) for n in re.findall(r"epoch (\d+)/\d+", self.text)]

    def wait_for(self, pattern: str, timeout: float = JOB_S) -> re.Match[str]:
        def found() -> re.Match[str] | None:
            if self.process.poll() is not None and not re.search(pattern, self.text):
                raise AssertionError(
                    f"exited {self.process.returncode} before {pattern!r}:\n{self.text[-3000:]}"
                )
            return re.search(pattern, self.text)

        match: re.Match[str] = wait_until(found, timeout, f"{pattern!r} on the terminal")
        return match

    def type(self, keys: bytes) -> None:
        os.write(self.master, keys)

    def finish(self, timeout: float = STARTUP_S) -> int:
        code = self.process.wait(timeout)
        self._reader.join(REQUEST_S)  # until it has read the end of the output
        return code

    def close(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        with contextlib.suppress(OSError):
            os.close(self.master)


@pytest.fixture
def terminal(service: ServiceProcess):  # type: ignore[no-untyped-def]
    opened: list[Terminal] = []

    def run(*args: str) -> Terminal:
        opened.append(Terminal(list(args), service.url))
        return opened[-1]

    yield run
    for term in opened:
        term.close()


def job_id_of(term: Terminal) -> str:
    return term.wait_for(r"job (job_\w+) queued").group(1)


def test_the_progress_bar_advances_on_a_terminal(service: ServiceProcess, terminal) -> None:  # type: ignore[no-untyped-def]
    term = terminal("train", *LONG_TRAINING, "--epochs", "1000000", "--validation", "0.2")
    job_id = job_id_of(term)

    def advanced() -> bool:
        drawn = sorted(set(term.epochs()))
        return len(drawn) >= 3 and drawn[-1] > 1000

    wait_until(advanced, JOB_S, "the bar to be drawn at three epochs past 1000")
    drawn = term.epochs()
    assert drawn == sorted(drawn), "the bar went backwards"
    frame = term.text.split("epoch")[-2:]
    assert "/1000000" in term.text and re.search(r"loss \d", term.text) and "val acc" in term.text
    assert re.search(r"ETA \d+:\d\d", term.text), frame
    assert "\x1b[" in term.raw.decode(errors="replace"), "no colour or cursor control on a terminal"
    with Client(service.url) as client:
        client.jobs.cancel(job_id)
    assert term.finish() == 1
    assert re.search(rf"error: job {job_id} cancelled", term.text)


def test_ctrl_c_then_cancel_stops_the_job(service: ServiceProcess, terminal) -> None:  # type: ignore[no-untyped-def]
    term = terminal("train", *LONG_TRAINING, "--epochs", "1000000")
    job_id = job_id_of(term)
    wait_until(lambda: any(e > 50 for e in term.epochs()), JOB_S, "the bar past epoch 50")
    term.type(b"\x03")  # Ctrl-C: the terminal sends SIGINT to the command
    term.wait_for(r"Interrupted: \[c\]ancel the job, \[d\]etach")
    term.type(b"c\n")
    assert term.finish() == 1
    assert re.search(rf"error: job {job_id} cancelled", term.text)
    with Client(service.url) as client:
        job = client.jobs.get(job_id)
    assert job.status == "cancelled" and job.model_id is not None


def test_ctrl_c_then_detach_leaves_the_job_running(service: ServiceProcess, terminal) -> None:  # type: ignore[no-untyped-def]
    term = terminal("train", *LONG_TRAINING, "--epochs", "1000000")
    job_id = job_id_of(term)
    wait_until(lambda: any(e > 50 for e in term.epochs()), JOB_S, "the bar past epoch 50")
    term.type(b"\x03")
    term.wait_for(r"Interrupted:")
    term.type(b"d\n")
    assert term.finish() == 130
    assert f"descent jobs follow {job_id}" in term.text
    with Client(service.url) as client:
        assert client.jobs.get(job_id).status == "running"
        client.jobs.cancel(job_id)
        client.jobs.wait(job_id, check=False, timeout=JOB_S)
