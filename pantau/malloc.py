"""glibc's allocator, held to a fixed mmap threshold for a long-running numpy process.

glibc serves an allocation of at least ``M_MMAP_THRESHOLD`` bytes with a mapping of its own,
unmapped when freed; smaller ones come from the heap, which gives memory back only from its
top and only beyond ``M_TRIM_THRESHOLD``. By default both thresholds slide: each time a mapped
block is freed, the mmap threshold rises to its size (up to 32 MiB) and the trim threshold to
twice that, so after the first big numpy arrays of a batch the next ones are carved from the
heap, and up to 64 MiB of freed heap stays resident. Under load that was Pantau's high-water
mark: ``pantau bench --fleet 10000`` peaked at 252-275 MB with the thresholds sliding, 221-239
MB with the mmap threshold fixed at 4 MiB (set by the environment or, as `pantau run` does, at
start; 0.19 -> 0.20-0.21 CPU s per 10,000 messages); docs/benchmarks.md has the runs.

`fix_mmap_threshold` sets it once, at start (``mallopt(M_MMAP_THRESHOLD)``, which also stops
both from sliding); where the C library is not glibc (musl has no ``mallopt``) it does
nothing. The environment variable ``MALLOC_MMAP_THRESHOLD_`` does the same for any process.
"""

from __future__ import annotations

import ctypes
import logging

log = logging.getLogger("pantau.malloc")
M_MMAP_THRESHOLD = -3  # glibc's malloc.h
MAX_KIB = 32 * 1024  # glibc refuses more (HEAP_MAX_SIZE / 2 on 64-bit)


def fix_mmap_threshold(kib: int) -> bool:
    """Fix glibc's mmap threshold at ``kib`` KiB (0: leave glibc's sliding default); whether
    the C library took it."""
    if kib <= 0:
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt  # the C library this interpreter runs on
    except (OSError, AttributeError):
        log.info("this C library has no mallopt: malloc_mmap_threshold_kib ignored")
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    if mallopt(M_MMAP_THRESHOLD, kib * 1024) != 1:
        log.warning("the C library refused an mmap threshold of %d KiB", kib)
        return False
    return True
