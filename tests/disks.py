"""Small file systems of their own for tests that fill a disk or make it read-only (a tmpfs; needs root).

Usage::

    with tmpfs(tmp_path / "disk", size_mb=24) as mount:   # skipped (failed in CI) where mounting fails
        ...
        remount_read_only(mount)
"""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator
from pathlib import Path

from tests.requires import missing


@contextlib.contextmanager
def tmpfs(mount: Path, *, size_mb: int) -> Iterator[Path]:
    """Mount a tmpfs of ``size_mb`` MiB at ``mount`` (created), unmounted on leaving the block."""
    mount.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size_mb}m", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        missing(f"cannot mount a tmpfs for the test: {done.stderr.strip() or done.returncode}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False, capture_output=True)


def remount_read_only(mount: Path) -> None:
    subprocess.run(["mount", "-o", "remount,ro", str(mount)], check=True, capture_output=True)


def fill(directory: Path) -> Path:
    """Write a file until the file system has no space left; returns it."""
    filler = directory / "filler"
    for name, chunk in (("filler", 65536), ("filler-tail", 512)):
        with contextlib.suppress(OSError), open(directory / name, "wb") as file:
            while True:
                file.write(b"\0" * chunk)
                file.flush()
    return filler
