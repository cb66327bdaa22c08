"""Keep the memory of freed tensors in the process instead of returning it to the system.

glibc serves blocks above its mmap threshold (at most 32 MB, raised as blocks are freed)
with fresh ``mmap`` pages and returns them on ``free``, so a training step whose
activations are tens of MB pays page faults and page zeroing for them every step. Raising
the threshold and the trim threshold makes those blocks come from, and go back to, the
heap, which the next step reuses. Both must be set: a fixed trim threshold alone turns off
glibc's adaptive mmap threshold and leaves every block over 128 kB to ``mmap``. Measured
(README, Speed): 10–20 % faster training steps, identical numbers.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import platform

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD_BYTES = 1 << 30
TRIM_THRESHOLD_BYTES = (1 << 31) - 1  # mallopt takes an int


def keep_freed_memory() -> bool:
    """Set glibc's mmap and trim thresholds; False (nothing changed) where libc is not
    glibc, e.g. macOS or musl."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    return bool(
        libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)
        and libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES)
    )
