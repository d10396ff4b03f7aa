"""The processors' state on disk: ``<state_dir>/processors.npz``, replaced atomically.

`StateFile.save` writes every array to a temporary file in the same directory, fsyncs it,
renames it over the previous snapshot and fsyncs the directory, so a crash leaves either the
old or the new snapshot, never a torn one; a save that fails (disk full) removes its
temporary file. `load` returns None when there is none yet and raises `ValueError` for a file
that is not a snapshot, however it is broken (truncated, garbage, a corrupt member). Both
block (call them through ``asyncio.to_thread`` from the event loop); the caller must not
mutate the arrays while `save` runs.
"""

from __future__ import annotations

import os
import struct
import zipfile
import zlib
from pathlib import Path

import numpy as np

from core.state import State


class StateFile:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def save(self, state: State) -> int:
        """Replace the snapshot with ``state``; returns its size in bytes."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        try:
            with open(tmp, "wb") as fh:
                np.savez(fh, **state)  # type: ignore[arg-type]  # numpy stubs: kwargs, allow_pickle
                fh.flush()
                os.fsync(fh.fileno())
                size = fh.tell()
            os.replace(tmp, self.path)
        except BaseException:
            tmp.unlink(missing_ok=True)  # a full disk must not keep a half snapshot's space
            raise
        dfd = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
        return size

    def load(self) -> State | None:
        """The saved arrays, or None when no snapshot exists. Raises OSError or ValueError
        (a file that is not a snapshot)."""
        try:
            with np.load(self.path, allow_pickle=False) as npz:
                if not hasattr(npz, "files"):  # a bare .npy array, not a snapshot
                    raise ValueError("one array, not an archive of them")
                return {k: npz[k] for k in npz.files}
        except FileNotFoundError:
            return None
        except (zipfile.BadZipFile, ValueError, EOFError, KeyError, zlib.error,
                UnicodeDecodeError, NotImplementedError, struct.error, OSError) as e:
            if type(e) is PermissionError or type(e) is IsADirectoryError:
                raise  # the file may be fine: say so, do not set it aside as corrupt
            raise ValueError(f"{self.path} is not a state snapshot: {e}") from e
