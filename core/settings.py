"""What every package's settings section is made of.

A section is a frozen dataclass whose fields are declared with `setting` (default + the
documentation that ``pantau settings`` and docs/settings.md show); secrets are `Secret`, so
they never reach a log or a repr; `SettingsError` names the setting that is wrong. Loading
(TOML, environment, secret files) lives in the composition root (`pantau.config`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from core.errors import PantauError


class SettingsError(PantauError):
    """A settings file or environment variable is malformed; the message names which."""


@dataclass(frozen=True, slots=True)
class Secret:
    """A string that prints as ``***``; read it with ``.reveal()`` where it is used."""

    _value: str = ""

    def reveal(self) -> str:
        return self._value

    def __bool__(self) -> bool:
        return bool(self._value)

    def __repr__(self) -> str:
        return "Secret('***')" if self._value else "Secret('')"

    __str__ = __repr__


def setting(default: Any, doc: str) -> Any:
    """A settings field: its default (lists become tuples) and its one-line documentation."""
    if isinstance(default, list | tuple):
        return field(default=tuple(default), metadata={"doc": doc})
    return field(default=default, metadata={"doc": doc})
