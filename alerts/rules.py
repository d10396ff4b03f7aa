"""Alert rules: what a rules file says, as frozen records (`Rule`), before they meet a registry.

A rules file (YAML, see ``alerts/data/blitar.rules.yaml`` and docs/rules.md) is a list of
rules; each has a ``name`` (the ``alertname`` label), a ``kind`` and the fields of that kind:

=========== ==================================================================================
kind        fires when
=========== ==================================================================================
threshold   ``metric`` at or ``above`` (or at or ``below``) a level for ``for``; clears only
            past ``clear`` (hysteresis; default: the level itself)
rate        ``metric`` changes faster than ``rate_above`` units per hour between two readings
stage       a staged derived value (``flood_stage``, ``ispu_category``) reaches one of its
            ``levels`` (each with its severity and label); one alert per level
quality     a reading of ``metric`` (every metric when absent) carries one of the quality
            ``flags`` (stuck, spike, gap, anomaly, out_of_range)
offline     the device status store has the device offline for ``for``
health      one of Pantau's own checks (``check``) is at or above ``above`` for ``for``
watchdog    always: a dead-man's switch downstream notices when it stops
=========== ==================================================================================

A rule may name the rules it ``inhibits``: while it fires, Alertmanager holds back theirs
for the same device (the fridge's heat alarm over its earlier "warm" warning); the levels of
a stage rule inhibit the lower ones by themselves.

Levels may be numbers or a device parameter (``above: {param: waspada_cm}``): devices without
it are left out of the rule. ``devices`` selects by ``kind``, ``site``, ``id`` and ``tags``.
Annotations ``summary`` (Bahasa Indonesia) and ``summary_en`` are `str.format` templates over
`PLACEHOLDERS` and the device's metrics (their latest value).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

from core.errors import PantauError
from devices.registry import Device

KIND_DOCS = {
    "threshold": "`metric` at or `above` (or at or `below`) a level for `for`; clears only past "
                 "`clear` (the hysteresis band; default: the level itself)",
    "rate": "`metric` rises faster than `rate_above` units per hour between two successive "
            "readings; clears below `clear` (default `rate_above`)",
    "stage": "a staged value (`flood_stage`, `ispu_category`) reaches one of `levels`: one alert "
             "per level, each with its severity and its label (label `stage`)",
    "quality": "a reading of `metric` (every raw metric when absent, label `metric`) carries one "
               "of the quality `flags`; clears with a reading without them",
    "offline": "the device status store has the device offline (last will, or silent for twice "
               "its interval) for `for`; clears when it is back",
    "health": "Pantau's own `check` is at or above `above` (default 1) for `for`",
    "watchdog": "always fires: a dead-man's switch downstream notices when it stops",
}
KINDS = tuple(KIND_DOCS)
SERIES_KINDS = ("threshold", "rate", "stage", "quality")
TEAMS = ("bpbd", "dlh", "dishub", "dinkes", "it")
HEALTH_CHECKS = ("writes_failing", "broker_disconnected", "deadletter_per_min")
PLACEHOLDERS = ("value", "unit", "threshold", "level", "device", "name", "site", "river",
                "metric", "rule")


class RulesError(PantauError):
    """A rules file is missing, not YAML, or names something impossible: ``file:line: ...``."""


@dataclass(frozen=True, slots=True)
class Bound:
    """A level: a number, or the device parameter ``param`` (NaN for a device without it)."""

    value: float = math.nan
    param: str = ""

    def of(self, device: Device) -> float:
        return float(device.params.get(self.param, math.nan)) if self.param else self.value

    def __str__(self) -> str:
        return f"params.{self.param}" if self.param else f"{self.value:g}"


@dataclass(frozen=True, slots=True)
class Level:
    """One step of a `stage` rule: at or above ``at`` the alert of this severity fires."""

    at: float
    severity: str
    label: str


@dataclass(frozen=True, slots=True)
class Selector:
    """Which devices a rule watches; an empty field selects every device."""

    kinds: tuple[str, ...] = ()
    sites: tuple[str, ...] = ()
    ids: tuple[str, ...] = ()
    tags: Mapping[str, str] = field(default_factory=dict)

    def matches(self, d: Device) -> bool:
        return ((not self.kinds or d.kind in self.kinds)
                and (not self.sites or d.site in self.sites) and (not self.ids or d.id in self.ids)
                and all(d.tags.get(k) == v for k, v in self.tags.items()))


@dataclass(frozen=True, slots=True)
class Rule:
    """One rule of a rules file; ``where`` is ``file:line`` for messages."""

    name: str
    kind: str
    where: str
    severity: str = "warning"
    team: str = "it"
    devices: Selector = field(default_factory=Selector)
    metric: str = ""
    above: Bound | None = None
    below: Bound | None = None
    clear: Bound | None = None
    rate_above: float = math.nan
    for_s: float = 0.0
    keep_firing_for_s: float = 0.0
    levels: tuple[Level, ...] = ()
    flags: tuple[str, ...] = ()
    check: str = ""
    summary: str = ""
    summary_en: str = ""
    runbook: str = ""
    inhibits: tuple[str, ...] = ()

    @property
    def sign(self) -> float:
        """+1 when the rule fires on high values, -1 on low ones (values are negated)."""
        return -1.0 if self.below is not None else 1.0

    @property
    def level(self) -> Bound | None:
        return self.below if self.below is not None else self.above


@dataclass(frozen=True, slots=True)
class RuleSet:
    rules: tuple[Rule, ...]
    source: str = "<memory>"

    def __iter__(self) -> Iterator[Rule]:
        return iter(self.rules)

    def __len__(self) -> int:
        return len(self.rules)
