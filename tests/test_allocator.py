"""Stages keep freed memory in the process (ames.allocator)."""

from __future__ import annotations

import platform
import subprocess
import sys
import textwrap

import pytest

from ames import allocator, cli

GLIBC = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"

# Where glibc puts a 64 MB block (mmap: its own pages; heap: the arena), and whether the
# heap still holds it once freed, from mallinfo2 (glibc >= 2.33).
WHERE_A_LARGE_BLOCK_GOES = textwrap.dedent(
    """
    import ctypes, sys
    import numpy as np
    from ames.allocator import keep_freed_memory

    class MallInfo2(ctypes.Structure):
        _fields_ = [(name, ctypes.c_size_t) for name in (
            "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost"
        ).split()]

    libc = ctypes.CDLL("libc.so.6")
    libc.mallinfo2.restype = MallInfo2
    if sys.argv[1] == "keep":
        assert keep_freed_memory()
    block = np.ones(1 << 24, dtype=np.float32)
    mmapped = libc.mallinfo2().hblkhd
    del block
    print(mmapped, libc.mallinfo2().arena)
    """
)
MB64 = 1 << 26


def _where_a_large_block_goes(mode: str) -> tuple[int, int]:
    out = subprocess.run(
        [sys.executable, "-c", WHERE_A_LARGE_BLOCK_GOES, mode],
        capture_output=True,
        text=True,
        check=True,
    )
    mmapped, heap_after_free = out.stdout.split()
    return int(mmapped), int(heap_after_free)


@pytest.mark.skipif(not GLIBC, reason="the thresholds are glibc's")
def test_a_large_block_comes_from_the_heap_and_stays_there_when_freed():
    mmapped, heap_after_free = _where_a_large_block_goes("system")
    assert mmapped >= MB64 and heap_after_free < MB64
    mmapped, heap_after_free = _where_a_large_block_goes("keep")
    assert mmapped < MB64 and heap_after_free >= MB64


def test_other_c_libraries_are_left_as_they_are(monkeypatch):
    monkeypatch.setattr(allocator.platform, "libc_ver", lambda: ("", ""))
    monkeypatch.setattr(allocator.ctypes, "CDLL", lambda *_: pytest.fail("libc was loaded"))
    assert allocator.keep_freed_memory() is False


def test_the_switch_leaves_glibc_as_it_is(monkeypatch):
    monkeypatch.setenv(allocator.SWITCH_ENV, "0")
    monkeypatch.setattr(allocator.ctypes, "CDLL", lambda *_: pytest.fail("libc was loaded"))
    assert allocator.keep_freed_memory() is False


def test_every_stage_runs_with_it(monkeypatch):
    calls = []
    monkeypatch.setattr(cli, "keep_freed_memory", lambda: calls.append("allocator"))
    cli.run_stage("masks", lambda: calls.append("main"))
    assert calls == ["allocator", "main"]
