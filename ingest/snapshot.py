"""The processors' state on disk: ``<state_dir>/processors.npz``, replaced atomically.

`StateFile.save` writes every array to a temporary file in the same directory, fsyncs it,
renames it over the previous snapshot and fsyncs the directory, so a crash leaves either the
old or the new snapshot, never a torn one. `load` returns None when there is none yet. Both
block (call them through ``asyncio.to_thread`` from the event loop); the caller must not
mutate the arrays while `save` runs.
"""

from __future__ import annotations

import os
import zipfile
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
        with open(tmp, "wb") as fh:
            np.savez(fh, **state)  # type: ignore[arg-type]  # numpy stubs: kwargs vs allow_pickle
            fh.flush()
            os.fsync(fh.fileno())
            size = fh.tell()
        os.replace(tmp, self.path)
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
                return {k: npz[k] for k in npz.files}
        except FileNotFoundError:
            return None
        except (zipfile.BadZipFile, ValueError, EOFError) as e:
            raise ValueError(f"{self.path} is not a state snapshot: {e}") from e
