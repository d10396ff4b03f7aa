"""`pantau.malloc`: with the mmap threshold fixed, a freed big array leaves the process; with
glibc's sliding default, the second one is carved from the heap and stays resident."""

from __future__ import annotations

import subprocess
import sys

import pytest

from core.settings import SettingsError
from pantau.settings import Settings

PROBE = """
import sys
import numpy as np
from pantau.malloc import fix_mmap_threshold

def rss() -> int:
    return int(open("/proc/self/statm").read().split()[1]) * 4096

took = fix_mmap_threshold(int(sys.argv[1]))
before = rss()
for _ in range(4):
    a = np.ones(6 << 17)  # 6 MiB, every page touched
    del a
print(took, rss() - before)
"""


def _probe(kib: int) -> tuple[bool, int]:
    out = subprocess.run([sys.executable, "-c", PROBE, str(kib)], capture_output=True,
                         text=True, check=True).stdout.split()
    return out[0] == "True", int(out[1])


def test_a_fixed_threshold_gives_a_freed_array_back() -> None:
    took, kept = _probe(4096)
    assert took
    assert kept < 1 << 20, f"{kept} bytes stayed resident"


def test_glibcs_sliding_default_keeps_it() -> None:
    """The control: without the fix the same loop keeps the array's 6 MiB (if this fails,
    the C library no longer slides its threshold and the setting may be unnecessary)."""
    took, kept = _probe(0)
    assert not took
    assert kept >= 5 << 20, f"only {kept} bytes stayed resident"


@pytest.mark.parametrize("kib", [-1, 32 * 1024 + 1])
def test_out_of_range_is_refused(kib: int) -> None:
    with pytest.raises(SettingsError, match="malloc_mmap_threshold_kib"):
        Settings(malloc_mmap_threshold_kib=kib)
