"""Validating a parsed registry document with errors that say where: ``file:line: where: problem``.

`Checker` holds the document's source name; each of its getters validates one field and raises
`RegistryError` naming the line of the offending node. ruamel's round-trip loader records lines
on its mappings and sequences; a plain ``dict`` (a registry built in code) has none, and the
message then names the source alone. `Checker.fail` is the ``Fail`` callback that
`devices.calibration` and `devices.device_fields` use for their own fields.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from core.errors import PantauError

ID_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")    # sites and devices (they go into topics)
NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")       # kinds, metrics, params


class RegistryError(PantauError):
    """The registry file is missing, not YAML, or describes something impossible."""


def line_of(node: Any, key: str | int | None = None) -> int | None:
    """1-based line of a ruamel node (or of one of its keys), when known."""
    lc = getattr(node, "lc", None)
    if lc is None:
        return None
    try:
        if key is None:
            return int(lc.line) + 1
        if isinstance(key, int):
            return int(lc.item(key)[0]) + 1
        return int(lc.key(key)[0]) + 1
    except (KeyError, IndexError, TypeError, AttributeError):
        return int(lc.line) + 1


class Checker:
    """Builds error messages of the form ``file:line: device 'x': field 'y': problem``."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, node: Any, key: str | int | None, where: str, problem: str) -> RegistryError:
        line = line_of(node, key)
        loc = f"{self.source}:{line}" if line else self.source
        return RegistryError(f"{loc}: {where}: {problem}")

    def mapping(self, node: Any, key: str | int | None, where: str) -> Mapping[str, Any]:
        if not isinstance(node, Mapping):
            raise self.fail(node, key, where, "must be a mapping")
        return node

    def number(self, node: Mapping[str, Any], key: str, where: str, *, default: float | None = None,
               lo: float = -math.inf, hi: float = math.inf) -> float:
        if key not in node:
            if default is None:
                raise self.fail(node, None, where, f"field '{key}' is missing")
            return default
        v = node[key]
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
            raise self.fail(node, key, where, f"field '{key}': {v!r} is not a finite number")
        if not lo <= v <= hi:
            raise self.fail(node, key, where, f"field '{key}': {v} is not within [{lo}, {hi}]")
        return float(v)

    def ident(self, node: Mapping[str, Any], key: str, where: str,
              pattern: re.Pattern[str] = ID_RE) -> str:
        v = node.get(key)
        if v is None:
            raise self.fail(node, None, where, f"field '{key}' is missing")
        if not isinstance(v, str) or not pattern.match(v):
            raise self.fail(node, key, where, f"field '{key}': {v!r} must match {pattern.pattern}")
        return v
