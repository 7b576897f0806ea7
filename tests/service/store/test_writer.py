"""The SQLite writer lock: it excludes other processes' writers, and a writer killed with -9 frees it."""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from service.store import open_store
from service.store.writer import WriterLock
from tests.timing import STARTUP_S, limit


def _free(path: Path) -> bool:
    """Whether another open file description can take the lock now."""
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(fd)  # closing drops a lock this check took
    return True


def test_a_write_transaction_holds_the_lock_and_lets_it_go(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'w.db'}")
    try:
        assert store.writer is not None
        with store.write_core():
            assert not _free(store.writer.path)
            with store.writer.held():  # reentrant in the thread that holds it
                assert not _free(store.writer.path)
        assert _free(store.writer.path)
        with pytest.raises(RuntimeError), store.write():
            assert not _free(store.writer.path)
            raise RuntimeError("roll back")
        assert _free(store.writer.path)
    finally:
        store.close()


def test_a_writer_killed_while_holding_the_lock_frees_it(tmp_path: Path) -> None:
    database = tmp_path / "w.db"
    holder = (
        "import sys, time; from pathlib import Path; from service.store.writer import WriterLock\n"
        f"lock = WriterLock(Path({str(database)!r}), 60)\n"
        "with lock.held():\n"
        "    print('held', flush=True); time.sleep(600)\n"
    )
    child = subprocess.Popen([sys.executable, "-c", holder], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "held"
        waiting = WriterLock(database, timeout_s=0.05)
        assert not _free(waiting.path)
        with waiting.held():  # gives up after its timeout and lets SQLite decide
            pass
        child.send_signal(signal.SIGKILL)
        child.wait(STARTUP_S)
        patient = WriterLock(database, timeout_s=limit(30))
        with patient.held():
            assert not _free(patient.path)
        assert _free(patient.path)
        patient.close()
        waiting.close()
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        if child.stdout is not None:
            child.stdout.close()
