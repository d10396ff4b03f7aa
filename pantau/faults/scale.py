"""How long the scenarios run: bounded (the default test run) or full length (``--full``,
``PANTAU_SLOW=1``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T", int, float)


@dataclass(frozen=True, slots=True)
class Size:
    full: bool = False

    def pick(self, bounded: T, full: T) -> T:
        """``full`` at full length, else ``bounded``."""
        return full if self.full else bounded
