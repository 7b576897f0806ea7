"""Processes for end-to-end tests: free ports, polling with a deadline, subprocesses that die with us.

:class:`Process` runs one command in a process group of its own, its output appended to a log file,
and the kernel sends it SIGKILL if the process that started it dies (``PR_SET_PDEATHSIG``; strictly,
when the starting thread ends, so start processes from the main thread), so a crashed or interrupted
test leaves nothing running; :meth:`Process.kill` and :meth:`Process.stop` end the whole group.
Every wait takes its bound from ``tests.timing`` (scaled by ``DESCENT_TEST_TIMEOUT_SCALE``).

Usage::

    server = Process("api", ["descent", "serve"], env=env, cwd=workdir, log_path=workdir / "api.log")
    server.start()
    try:
        server.wait_for_http(f"http://127.0.0.1:{port}/readyz", timeout=STARTUP_S)
        ...
    finally:
        server.stop()
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import httpx

_PR_SET_PDEATHSIG = 1


class ProcessError(RuntimeError):
    """A process did not start or stop as expected (the message holds the end of its log)."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_until(condition: Callable[[], Any], timeout: float, what: str, interval: float = 0.05) -> Any:
    """Poll ``condition`` until it returns a truthy value (returned); ``TimeoutError`` naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {timeout:g} s")
        time.sleep(interval)


def _die_with_parent() -> None:
    """Runs in the child before exec: SIGKILL it when the test process dies, however it dies."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def as_user(user: str | None) -> dict[str, Any]:
    """Popen arguments that run the child as ``user`` (and its group), or nothing."""
    if user is None:
        return {}
    return {"user": user, "group": user, "extra_groups": []}


def group_members(pgid: int) -> list[int]:
    """The live processes (zombies left out) of process group ``pgid``."""
    members = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            # The fields after the command name: state, ppid, pgrp, ...; a zombie (Z) is already dead.
            if int(fields[2]) == pgid and fields[0] != "Z":
                members.append(int(entry.name))
    return members


class Process:
    """One command run in its own process group, its output appended to ``log_path``."""

    def __init__(
        self,
        name: str,
        argv: list[str],
        *,
        env: Mapping[str, str],
        cwd: Path,
        log_path: Path,
        user: str | None = None,
    ) -> None:
        self.name, self.argv, self.env, self.cwd, self.log_path = name, argv, dict(env), cwd, log_path
        self.user = user
        self.popen: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        if self.popen is None:
            raise ProcessError(f"{self.name} was never started")
        return self.popen.pid

    @property
    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def start(self) -> None:
        if self.running:
            raise ProcessError(f"{self.name} is already running (pid {self.pid})")
        with open(self.log_path, "ab") as log:
            log.write(f"\n===== start {' '.join(self.argv)}\n".encode())
            log.flush()
            self.popen = subprocess.Popen(
                self.argv,
                env=self.env,
                cwd=self.cwd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with_parent,
                **as_user(self.user),
            )

    def send(self, sig: int) -> None:
        """Send ``sig`` to the main process only, as ``docker stop`` does to a container's PID 1."""
        if self.running:
            os.kill(self.pid, sig)

    def kill(self) -> None:
        """SIGKILL the whole process group (``kill -9``, ``docker kill``) and reap it."""
        if self.popen is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, signal.SIGKILL)
        self.popen.wait()

    def wait(self, timeout: float) -> int:
        """Wait for the process to exit and return its exit code; ``ProcessError`` when it does not."""
        if self.popen is None:
            raise ProcessError(f"{self.name} was never started")
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            raise ProcessError(f"{self.name} did not exit within {timeout:g} s\n{self.tail()}") from None

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM, then SIGKILL of the group after ``timeout``; the exit code (None if never started)."""
        if self.popen is None:
            return None
        self.send(signal.SIGTERM)
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            pass
        code = self.popen.poll()
        # Children the main process left behind die with the group either way.
        self.kill()
        return code

    def output(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def tail(self, lines: int = 40) -> str:
        text = "\n".join(self.output().splitlines()[-lines:])
        return f"--- {self.name} (last {lines} lines of {self.log_path}) ---\n{text}"

    def wait_for_output(self, needle: str, timeout: float, *, after: int = 0) -> None:
        """Until ``needle`` shows in the log after character ``after``; fails at once if the process exits."""

        def seen() -> bool:
            if needle in self.output()[after:]:
                return True
            if not self.running:
                raise ProcessError(f"{self.name} exited while starting\n{self.tail()}")
            return False

        try:
            wait_until(seen, timeout, f"{self.name} printing {needle!r}")
        except TimeoutError as exc:
            raise ProcessError(f"{exc}\n{self.tail()}") from None

    def wait_for_http(self, url: str, timeout: float, *, interval: float = 0.1) -> None:
        """Until GET ``url`` answers 200; fails at once if the process exits."""

        def answers() -> bool:
            if not self.running:
                raise ProcessError(f"{self.name} exited while starting\n{self.tail()}")
            try:
                return httpx.get(url, timeout=5.0).status_code == 200
            except httpx.TransportError:
                return False

        try:
            wait_until(answers, timeout, f"{self.name} answering GET {url} with 200", interval)
        except TimeoutError as exc:
            raise ProcessError(f"{exc}\n{self.tail()}") from None
