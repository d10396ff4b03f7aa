"""A device's descriptive string fields: ``owner``, ``contact`` and ``tags``.

``owner`` (who is responsible, e.g. ``BPBD Kabupaten Blitar``) and ``contact`` (whom to call:
a name, phone or email) are optional strings. ``tags`` is a mapping of name -> string for
everything else a dashboard or a tool may group by; a device's ``river:`` key (read by the
simulator, see `devices.catalogue`) is also exposed as ``tags["river"]``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from devices.calibration import Fail

TAG_RE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
TAG_KEYS = ("river",)  # top-level string keys of a device that also become tags


def _string(fail: Fail, node: Mapping[str, Any], key: str, where: str) -> str:
    v = node.get(key, "")
    if v is None:
        return ""
    if not isinstance(v, str):
        raise fail(node, key, where, f"field '{key}': {v!r} must be a string")
    return v.strip()


def parse_device_fields(fail: Fail, d: Mapping[str, Any], where: str
                        ) -> tuple[str, str, dict[str, str]]:
    """(owner, contact, tags) of one device mapping; errors name the field (and tag)."""
    owner, contact = _string(fail, d, "owner", where), _string(fail, d, "contact", where)
    node = d.get("tags") or {}
    if not isinstance(node, Mapping):
        raise fail(d, "tags", where, "field 'tags' must be a mapping of name -> string")
    tags: dict[str, str] = {}
    for k, v in node.items():
        if not isinstance(k, str) or not TAG_RE.match(k):
            raise fail(node, None, f"{where}: tags", f"name {k!r} must match {TAG_RE.pattern}")
        if isinstance(v, bool) or not isinstance(v, str | int | float):
            raise fail(node, k, f"{where}: tags", f"field '{k}': {v!r} must be a string")
        tags[k] = str(v)
    for k in TAG_KEYS:
        if isinstance(d.get(k), str):
            tags.setdefault(k, d[k])
    return owner, contact, tags
