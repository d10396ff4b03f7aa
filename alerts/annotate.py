"""Annotations of an alert: what a person reads, in Bahasa Indonesia (``summary``) and English
(``summary_en``), with the value and its unit, the stage or category, and the device's latest
values (a flood alert names the level and the rate of rise). Rendered when an alert changes
state, from the rule's templates or the defaults of its kind below."""

from __future__ import annotations

import math
import string
from collections.abc import Mapping
from typing import Any

from alerts.rules import Level, Rule

DEFAULTS: dict[str, tuple[str, str]] = {  # kind -> (Bahasa Indonesia, English)
    "threshold": ("{name}: {metric} {value} {unit} (batas {threshold} {unit})",
                  "{name}: {metric} {value} {unit} (limit {threshold} {unit})"),
    "rate": ("{name}: {metric} berubah {value} {unit}/jam", "{name}: {metric} changes by "
             "{value} {unit}/h"),
    "stage": ("{name}: status {level}", "{name}: stage {level}"),
    "quality": ("{name}: data {metric} meragukan ({rule})", "{name}: {metric} data is suspect "
                "({rule})"),
    "offline": ("{name} ({site}) tidak mengirim data / offline", "{name} ({site}) is offline"),
    "health": ("Pantau: {rule} = {value}", "Pantau: {rule} = {value}"),
    "watchdog": ("Pantau hidup (Watchdog): peringatan ini selalu menyala",
                 "Pantau is alive (Watchdog): this alert always fires"),
}


class _Values(dict[str, str]):
    """Placeholders that are not known read as ``?`` (a metric without a reading yet)."""

    def __missing__(self, key: str) -> str:
        return "?"


def fmt(value: float) -> str:
    """A value for people: at most one decimal, no trailing ``.0``."""
    if not math.isfinite(value):
        return "?"
    text = f"{value:.1f}"
    return text[:-2] if text.endswith(".0") else text


def render(rule: Rule, level: Level | None, labels: Mapping[str, str], *, value: float,
           unit: str, threshold: float, device_name: str, metrics: Mapping[str, float],
           dashboard_url: str = "") -> dict[str, str]:
    """The annotations of one alert (see the module docstring)."""
    values = _Values({k: fmt(v) for k, v in metrics.items()})
    values.update({
        "value": fmt(value), "unit": unit, "threshold": fmt(abs(threshold)),
        "level": level.label if level else "", "device": labels.get("device", ""),
        "name": device_name or labels.get("device", "Pantau"), "site": labels.get("site", ""),
        "river": labels.get("river", ""), "metric": labels.get("metric", rule.metric),
        "rule": rule.name})
    id_text, en_text = DEFAULTS[rule.kind]
    fmtr = string.Formatter()
    out: dict[str, Any] = {
        "summary": fmtr.vformat(rule.summary or id_text, (), values),
        "summary_en": fmtr.vformat(rule.summary_en or en_text, (), values),
        "value": f"{fmt(value)} {unit}".strip(),
    }
    if level is not None:
        out["stage"] = level.label
    if rule.runbook:
        out["runbook_url"] = rule.runbook
    if dashboard_url and labels.get("device"):
        out["dashboard"] = f"{dashboard_url.rstrip('/')}?var-device={labels['device']}"
    return out
