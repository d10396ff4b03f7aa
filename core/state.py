"""`State`: what a stateful component hands to a snapshot and takes back on restore."""

from __future__ import annotations

from typing import Any

import numpy.typing as npt

State = dict[str, npt.NDArray[Any]]
