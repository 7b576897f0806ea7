"""``descent serve``'s process settings."""

from __future__ import annotations

import ctypes
import sys

import pytest

from service.cli import limit_malloc_arenas


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_malloc_arenas_are_limited_unless_the_environment_says_how_many(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("MALLOC_ARENA_MAX", raising=False)
    glibc = hasattr(ctypes.CDLL(None), "gnu_get_libc_version")
    assert limit_malloc_arenas() is glibc
    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")
    assert limit_malloc_arenas() is False
