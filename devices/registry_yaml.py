"""Validating a parsed registry document with errors that say where: ``file:line: where: problem``.

`Checker` holds the document's source name; each of its getters validates one field and raises
`RegistryError` naming the line of the offending node. ruamel's round-trip loader records lines
on its mappings and sequences; a plain ``dict`` (a registry built in code) has none, and the
message then names the source alone. `Checker.fail` is the ``Fail`` callback that
`devices.calibration` and `devices.device_fields` use for their own fields.

`lean_document` reads a document into plain dicts, lists and scalars without the round-trip
tree (which costs ~13 KB and ~2 ms per device of a large fleet and leaves its freed memory in
CPython's arenas); it has no line numbers, so a caller re-reads a document it found invalid
with ruamel's round-trip loader to say where (`devices.registry.load_registry`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml import events as ev
from ruamel.yaml.nodes import ScalarNode

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


class NotLean(Exception):
    """The document uses what `lean_document` leaves to the round-trip loader."""


_KEY = object()   # the next scalar of a mapping is a key
# Plain scalars that cannot be anything but these types in YAML 1.1 or 1.2 (ruamel's resolver
# decides the rest): most of a registry, taken without the resolver's regex round.
_INT = re.compile(r"-?(?:0|[1-9][0-9]{0,17})")
_FLOAT = re.compile(r"-?(?:0|[1-9][0-9]{0,14})\.[0-9]{1,15}")
_WORD = re.compile(r"[A-Za-z][A-Za-z0-9_.-]*")
_SPECIAL = frozenset(("y", "n", "yes", "no", "on", "off", "true", "false", "null", "nan", "inf"))
_CORE = frozenset(f"tag:yaml.org,2002:{t}" for t in ("str", "int", "float", "bool", "null",
                                                       "timestamp"))


def lean_document(text: str) -> Any:
    """``text`` parsed as ruamel's round-trip loader would, as plain Python objects (dict, list,
    str, int, float, bool, None, dates), built straight from the C parser's event stream.

    Raise `NotLean` for what it does not build (explicit tags, anchors and aliases, merge or
    non-scalar keys, duplicate keys, several documents) and ruamel's ``YAMLError`` or
    ``ValueError`` (an impossible date) for what is not valid: the caller then loads the
    text round-trip, which handles or reports all of it with a line number.
    """
    rt = YAML(typ="rt")
    resolve, construct = rt.resolver.resolve, rt.constructor.construct_object
    words: dict[str, Any] = {}    # a plain scalar's text -> its value: shares repeated ones
    quoted: dict[str, str] = {}   # likewise for quoted strings (a quoted "true" is a string)

    def scalar(text: str) -> Any:
        if _FLOAT.fullmatch(text):
            return float(text)
        if _INT.fullmatch(text):
            return int(text)
        v = words.get(text, words)
        if v is not words:
            return v
        if _WORD.fullmatch(text) and text.lower() not in _SPECIAL:
            v = text
        else:
            tag = resolve(ScalarNode, text, (True, False))
            if str(tag) not in _CORE:
                raise NotLean(f"a scalar of tag {tag}")    # the merge key '<<', a value '='
            v = construct(ScalarNode(tag, text))
            if isinstance(v, float):
                v = float(v)          # not ruamel's ScalarFloat, which keeps its formatting
            elif isinstance(v, int) and not isinstance(v, bool):
                v = int(v)
        words[text] = v
        return v

    root: list[Any] = []
    top: Any = root               # the open container
    key: Any = None               # None in a sequence; _KEY or the pending key in a mapping
    stack: list[tuple[Any, Any]] = []
    documents = 0
    for e in YAML(typ="safe").parse(text):
        t = type(e)
        if t is ev.ScalarEvent:
            if e.tag is not None or e.anchor is not None:
                raise NotLean("a tag or an anchor")
            v = quoted.setdefault(e.value, e.value) if e.style else scalar(e.value)
        elif t is ev.MappingStartEvent or t is ev.SequenceStartEvent:
            if e.tag is not None or e.anchor is not None:
                raise NotLean("a tag or an anchor")
            v = {} if t is ev.MappingStartEvent else []
        elif t is ev.MappingEndEvent or t is ev.SequenceEndEvent:
            top, key = stack.pop()
            key = None if key is None else _KEY
            continue
        elif t is ev.AliasEvent:
            raise NotLean("an alias")
        else:
            if t is ev.DocumentStartEvent:
                documents += 1
                if documents > 1:
                    raise NotLean("several documents")
            continue
        if key is None:
            top.append(v)
        elif key is _KEY:
            if type(v) is dict or type(v) is list or v in top:
                raise NotLean("a complex or duplicate key")
            key = v
            continue
        else:
            top[key] = v
            key = _KEY
        if type(v) is dict or type(v) is list:
            stack.append((top, key))
            top, key = v, (_KEY if type(v) is dict else None)
    return root[0] if root else None
