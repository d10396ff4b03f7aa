"""A small filesystem for fault tests: ``small_fs(path, size)`` mounts a size-limited tmpfs at
``path`` (root only: it needs ``mount``), so a test can fill it (ENOSPC) or remount it
read-only (EROFS) under a running writer; `fill` and `read_only` do that and undo it.

Without root (or where mounting is not allowed), the faults fall back to what a user can do:
`fill` makes the directory unwritable (EACCES) and `read_only` does the same, so the same
tests still run the failure path, only with another errno.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path


def _run(*cmd: str) -> bool:
    return subprocess.run(cmd, capture_output=True, check=False).returncode == 0


class SmallFs:
    def __init__(self, path: Path, mounted: bool) -> None:
        self.path, self.mounted = path, mounted

    @contextlib.contextmanager
    def full(self) -> Iterator[None]:
        """Leave (almost) no free space, then give it back."""
        if not self.mounted:
            with self._unwritable():
                yield
            return
        filler = self.path / ".filler"
        fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
        try:
            while os.write(fd, b"\0" * 4096):
                pass
        except OSError:
            pass  # ENOSPC: full
        finally:
            os.close(fd)
        try:
            yield
        finally:
            filler.unlink()

    @contextlib.contextmanager
    def read_only(self) -> Iterator[None]:
        """Remount read-only (as the kernel does after an I/O error), then read-write."""
        if not self.mounted:
            with self._unwritable():
                yield
            return
        assert _run("mount", "-o", "remount,ro", str(self.path)), "cannot remount read-only"
        try:
            yield
        finally:
            assert _run("mount", "-o", "remount,rw", str(self.path))

    @contextlib.contextmanager
    def _unwritable(self) -> Iterator[None]:
        modes = {p: p.stat().st_mode for p in [self.path, *self.path.iterdir()]}
        for p in modes:
            p.chmod(0o555 if p.is_dir() else 0o444)
        try:
            yield
        finally:
            for p, mode in modes.items():
                p.chmod(mode)


@contextlib.contextmanager
def small_fs(path: Path, size: int) -> Iterator[SmallFs]:
    path.mkdir(parents=True, exist_ok=True)
    mounted = os.geteuid() == 0 and _run("mount", "-t", "tmpfs", "-o", f"size={size},mode=0700",
                                         "tmpfs", str(path))
    try:
        yield SmallFs(path, mounted)
    finally:
        if mounted:
            _run("umount", "-l", str(path))
