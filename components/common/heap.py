"""Hand memory the process has freed back to the operating system.

glibc's malloc keeps freed blocks in its arenas for reuse, and a pod is charged for them until they are
returned: a model's released weights would still count against the step's memory limit while the next
phase allocates its own. malloc_trim(0) returns every free page of every arena.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
from functools import cache


@cache
def _malloc_trim():
    """glibc's malloc_trim, or None (another C library, another operating system)."""
    name = ctypes.util.find_library("c")
    if not name:
        return None
    try:
        trim = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


def release_freed_memory() -> None:
    """Collect unreachable Python objects (a model's layers form cycles), then return the freed pages."""
    gc.collect()
    trim = _malloc_trim()
    if trim is not None:
        trim(0)
