"""A panel query as Grafana's InfluxDB data source (InfluxQL, raw mode) sends it: the macros
and the dashboard's variables replaced. For tests and for checking a dashboard offline.

- ``$timeFilter`` -> ``time >= <from>ms and time <= <to>ms``;
- ``$__interval`` -> the range divided by the panel's data points, rounded to a round
  interval as Grafana rounds it, and never below the panel's ``interval`` (min interval);
- ``$name`` / ``${name}`` -> the variable's value; inside a regex (``/^$name$/``) several values
  become ``(a|b)`` with regex characters escaped, as Grafana formats them for InfluxDB.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

# Grafana's round intervals (rangeutil.roundInterval), in ms: the result is the next one up.
_ROUND = ((15, 10), (35, 20), (75, 50), (150, 100), (350, 200), (750, 500), (1500, 1000),
          (3500, 2000), (7500, 5000), (12500, 10000), (17500, 15000), (25000, 20000),
          (45000, 30000), (90000, 60000), (210000, 120000), (450000, 300000),
          (750000, 600000), (1050000, 900000), (1500000, 1200000), (2700000, 1800000),
          (5400000, 3600000), (9000000, 7200000), (16200000, 10800000),
          (32400000, 21600000), (86400000, 43200000), (604800000, 86400000),
          (1814400000, 604800000), (3628800000, 2592000000))
_UNITS = (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000), ("ms", 1))
_VAR = re.compile(r"\$\{(\w+)\}|\$(\w+)")


def parse_duration_ms(text: str) -> int:
    """``10s``, ``1h``, ``30d``, ``>1m`` (Grafana's min-interval form) -> ms."""
    m = re.fullmatch(r">?(\d+)(ms|s|m|h|d|w)", text.strip())
    if m is None:
        raise ValueError(f"not a duration: {text!r}")
    scale = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000,
             "w": 604_800_000}[m[2]]
    return int(m[1]) * scale


def round_interval(ms: float) -> int:
    for upper, value in _ROUND:
        if ms < upper:
            return value
    return 31_536_000_000


def interval_text(ms: int) -> str:
    for unit, scale in _UNITS:
        if ms % scale == 0:
            return f"{ms // scale}{unit}"
    return f"{ms}ms"


def interval(range_ms: int, *, max_data_points: int = 1000, min_interval: str = "") -> str:
    """``$__interval`` for a range, as Grafana computes it."""
    ms = round_interval(range_ms / max_data_points)
    if min_interval:
        ms = max(ms, parse_duration_ms(min_interval))
    return interval_text(ms)


def _regex_value(values: Sequence[str]) -> str:
    escaped = [re.sub(r"([\\/^$.|?*+()\[\]{}-])", r"\\\1", v) for v in values]
    return escaped[0] if len(escaped) == 1 else "(" + "|".join(escaped) + ")"


def expand(query: str, *, from_ms: int, to_ms: int, interval_ms: str,
           variables: Mapping[str, Sequence[str]] | None = None) -> str:
    """``query`` with the macros and ``variables`` (name -> selected values) replaced.

    Raises KeyError naming a variable the query uses that ``variables`` does not define."""
    variables = variables or {}
    out = query.replace("$timeFilter", f"time >= {from_ms}ms and time <= {to_ms}ms")
    out = out.replace("$__interval", interval_ms)

    def sub(m: re.Match[str]) -> str:
        name = m[1] or m[2]
        if name.startswith("tag_") or name == "col":
            return m[0]  # alias patterns, not variables
        if name not in variables:
            raise KeyError(f"query uses ${name}, which the dashboard does not define: {query}")
        values = list(variables[name])
        before = out[:m.start()]
        in_regex = before.count("/") % 2 == 1
        return _regex_value(values) if in_regex else ",".join(values)

    return _VAR.sub(sub, out)


def used_variables(text: str) -> set[str]:
    """The dashboard variables ``text`` refers to (Grafana's own macros left out)."""
    names = {m[1] or m[2] for m in _VAR.finditer(text)}
    return {n for n in names if not n.startswith(("__", "tag_")) and n not in (
        "timeFilter", "col")}
