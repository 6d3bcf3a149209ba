"""Hand memory the process has freed back to the operating system.

glibc's malloc keeps freed blocks in its arenas for reuse, and a pod is charged for them until they are
returned: a model's released weights would still count against the step's memory limit while the next
phase allocates its own. Two remedies: blocks of 1 MiB and more mapped on their own (mmap), so that
freeing one unmaps it, and malloc_trim(0), which returns every free page of every arena. Without the
first, loading a 954 MB Keras model peaked at 1.44 x its size in one run and 1.05 x in another: glibc's
adaptive threshold put tensors replaced during the load into the heap, where their pages stayed.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
from functools import cache

M_MMAP_THRESHOLD = -3  # malloc.h
LARGE_BLOCK = 1024 * 1024


@cache
def _libc():
    name = ctypes.util.find_library("c")
    if not name:
        return None
    try:
        return ctypes.CDLL(name)
    except OSError:
        return None


def map_large_blocks_apart() -> None:
    """From now on, allocations of 1 MiB and more are mapped on their own and unmapped when freed (fixing the
    threshold also turns off glibc's adaptive one). A no-op outside glibc."""
    mallopt = getattr(_libc(), "mallopt", None)
    if mallopt is not None:
        mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
        mallopt(M_MMAP_THRESHOLD, LARGE_BLOCK)


@cache
def _malloc_trim():
    """glibc's malloc_trim, or None (another C library, another operating system)."""
    trim = getattr(_libc(), "malloc_trim", None)
    if trim is None:
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
