"""Reading a rules file: YAML -> `alerts.rules.RuleSet`, every error as ``file:line: rule 'x':
field 'y': problem`` (`alerts.rules.RulesError`). What a rule means for a registry (metrics
that exist, parameters that are set) is checked when it is compiled (`alerts.compile`)."""

from __future__ import annotations

import math
import re
import string
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from alerts.rules import (
    HEALTH_CHECKS,
    KINDS,
    TEAMS,
    Bound,
    Level,
    Rule,
    RulesError,
    RuleSet,
    Selector,
)
from alerts.settings import SEVERITIES
from core.batch import FLAGS
from devices.registry_yaml import line_of

NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}$")
DURATION_RE = re.compile(r"^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")
FIELD_DOCS = {
    "name": "the `alertname` label; unique in the file",
    "kind": "what the rule watches (see *Kinds*)",
    "severity": "info, warning, high or critical (default warning; stage rules: per level)",
    "team": "who is on call: bpbd, dlh, dishub, dinkes or it (default it); routes the alert",
    "devices": "which devices: `{kind: .., site: .., id: .., tags: {river: brantas}}`, each a "
               "name or a list (default: every device)",
    "metric": "the series: a raw metric (`battery_v`) or a derived one (`flood_stage`, "
              "`level_rise_cm_h`, `ispu_category`, `<metric>_zscore`)",
    "above": "fire at or above this level: a number or `{param: <device parameter>}`",
    "below": "fire at or below this level (same forms)",
    "clear": "the level the value must pass back to clear (hysteresis)",
    "rate_above": "rate rules: units per hour",
    "for": "how long the condition must hold before the alert fires (`30s`, `10m`, `1h30m`)",
    "keep_firing_for": "how long the alert keeps firing after the condition cleared",
    "levels": "stage rules: a list of `{at, severity, label}`, rising",
    "flags": "quality rules: any of stuck, spike, gap, anomaly, out_of_range",
    "check": "health rules: writes_failing, broker_disconnected or deadletter_per_min",
    "summary": "the message in Bahasa Indonesia (a template, see *Placeholders*)",
    "summary_en": "the message in English",
    "runbook": "a URL with what to do",
    "inhibits": "names of rules whose alerts Alertmanager holds back for the same device while "
                "this one fires (a stricter alarm over an earlier warning; a stage rule's "
                "higher levels inhibit its lower ones without it)",
}
FIELDS = set(FIELD_DOCS)


def default_rules_path() -> Path:
    return Path(str(resources.files("alerts") / "data" / "blitar.rules.yaml"))


def load_rules(path: str | Path) -> RuleSet:
    """Read and validate a rules file; raise `RulesError` naming the file and line."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise RulesError(f"{path}: cannot read the alert rules: {e.strerror}") from e
    try:
        doc = YAML(typ="rt").load(text)
    except (YAMLError, ValueError) as e:
        raise RulesError(f"{path}: not valid YAML: {e}") from e
    return parse_rules(doc, source=str(path))


class _Ctx:
    def __init__(self, source: str, node: Any, where: str) -> None:
        self.source, self.node, self.where = source, node, where

    def loc(self, key: str | None = None, node: Any = None) -> str:
        """``file:line`` of the rule (or of one of its fields)."""
        line = line_of(self.node if node is None else node, key)
        return f"{self.source}:{line}" if line else self.source

    def fail(self, key: str | None, problem: str, node: Any = None) -> RulesError:
        what = f"field '{key}': " if key else ""
        return RulesError(f"{self.loc(key, node)}: {self.where}: {what}{problem}")

    def text(self, key: str, default: str | None = None) -> str:
        v = self.node.get(key, default)
        if v is None:
            raise self.fail(None, f"field '{key}' is missing")
        if not isinstance(v, str):
            raise self.fail(key, f"{v!r} is not a string")
        return v

    def choice(self, key: str, options: tuple[str, ...], default: str | None = None) -> str:
        v = self.text(key, default)
        if v not in options:
            raise self.fail(key, f"{v!r} is not one of {', '.join(options)}")
        return v

    def duration(self, key: str) -> float:
        v = self.node.get(key, 0)
        if isinstance(v, int | float) and not isinstance(v, bool) and v >= 0:
            return float(v)
        m = DURATION_RE.match(str(v))
        if not isinstance(v, str) or not v or m is None:
            raise self.fail(key, f"{v!r} is not a duration (seconds, or like 30s, 5m, 1h30m)")
        h, mi, s = (int(x or 0) for x in m.groups())
        return float(h * 3600 + mi * 60 + s)

    def number(self, value: Any, key: str, node: Any = None) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float) \
                or not math.isfinite(value):
            raise self.fail(key, f"{value!r} is not a finite number", node)
        return float(value)

    def bound(self, key: str) -> Bound | None:
        v = self.node.get(key)
        if v is None:
            return None
        if isinstance(v, Mapping):
            param = v.get("param")
            if set(v) != {"param"} or not isinstance(param, str) or not param:
                raise self.fail(key, "a level is a number or {param: <device parameter>}")
            return Bound(param=param)
        return Bound(value=self.number(v, key))

    def template(self, key: str) -> str:
        v = self.text(key, "")
        try:
            names = [f for _, f, _, _ in string.Formatter().parse(v) if f is not None]
        except ValueError as e:
            raise self.fail(key, f"not a valid template: {e}") from e
        bad = [n for n in names if not re.match(r"^[a-z][a-z0-9_]*$", n)]
        if bad:
            raise self.fail(key, f"placeholder {{{bad[0]}}}: use a plain name such as {{value}}")
        return v


def _selector(ctx: _Ctx) -> Selector:
    v = ctx.node.get("devices", {})
    if not isinstance(v, Mapping):
        raise ctx.fail("devices", "must be a mapping of kind/site/id/tags")
    out: dict[str, tuple[str, ...]] = {}
    for key in ("kind", "site", "id"):
        item = v.get(key, ())
        items = (item,) if isinstance(item, str) else tuple(item)
        if not all(isinstance(x, str) for x in items):
            raise ctx.fail("devices", f"'{key}' must be a name or a list of names", v)
        out[key] = items
    unknown = set(v) - {"kind", "site", "id", "tags"}
    if unknown:
        raise ctx.fail("devices", f"unknown selector {sorted(unknown)[0]!r} (kind, site, id, tags)")
    tags = v.get("tags", {})
    if not isinstance(tags, Mapping) or not all(isinstance(x, str) for x in tags.values()):
        raise ctx.fail("devices", "'tags' must map tag names to strings", v)
    return Selector(out["kind"], out["site"], out["id"], dict(tags))


def _levels(ctx: _Ctx) -> tuple[Level, ...]:
    raw = ctx.node.get("levels")
    if not isinstance(raw, list) or not raw:
        raise ctx.fail("levels", "a stage rule needs a list of {at, severity, label}")
    out = []
    for i, item in enumerate(raw):
        if not isinstance(item, Mapping) or set(item) != {"at", "severity", "label"}:
            raise ctx.fail("levels", f"item {i + 1}: needs exactly at, severity and label", raw)
        if item["severity"] not in SEVERITIES:
            raise ctx.fail("levels", f"item {i + 1}: severity {item['severity']!r} is not one "
                           f"of {', '.join(SEVERITIES)}", raw)
        out.append(Level(ctx.number(item["at"], "levels", raw), item["severity"],
                         str(item["label"])))
    if [lv.at for lv in out] != sorted({lv.at for lv in out}):
        raise ctx.fail("levels", "levels must rise strictly")
    return tuple(out)


def _rule(ctx: _Ctx, name: str) -> Rule:
    node = ctx.node
    unknown = sorted(set(node) - FIELDS)
    if unknown:
        raise ctx.fail(unknown[0], f"unknown field (known: {', '.join(sorted(FIELDS))})")
    kind = ctx.choice("kind", KINDS)
    above, below, clear = ctx.bound("above"), ctx.bound("below"), ctx.bound("clear")
    metric = ctx.text("metric", "")
    if kind in ("threshold", "rate", "stage") and not metric:
        raise ctx.fail(None, f"a {kind} rule needs a 'metric'")
    if kind == "threshold" and (above is None) == (below is None):
        raise ctx.fail(None, "a threshold rule needs exactly one of 'above' and 'below'")
    if clear is not None and clear.param == "" and above is not None and above.param == "" \
            and clear.value > above.value:
        raise ctx.fail("clear", f"{clear} is above the firing level {above}: no hysteresis")
    if clear is not None and clear.param == "" and below is not None and below.param == "" \
            and clear.value < below.value:
        raise ctx.fail("clear", f"{clear} is below the firing level {below}: no hysteresis")
    rate = ctx.number(node["rate_above"], "rate_above") if "rate_above" in node else math.nan
    if kind == "rate" and not rate > 0:
        raise ctx.fail("rate_above", "a rate rule needs a positive 'rate_above' (per hour)")
    flags = tuple(node.get("flags", ()))
    if kind == "quality" and (not flags or not set(flags) <= set(FLAGS)):
        raise ctx.fail("flags", f"a quality rule needs flags among {', '.join(FLAGS)}")
    check = ctx.choice("check", HEALTH_CHECKS) if kind == "health" else ""
    if kind == "health" and above is None:
        above = Bound(value=1.0)
    return Rule(
        name=name, kind=kind, where=ctx.loc(),
        severity=ctx.choice("severity", SEVERITIES, "warning"),
        team=ctx.choice("team", TEAMS, "it"),
        devices=_selector(ctx), metric=metric, above=above, below=below, clear=clear,
        rate_above=rate, for_s=ctx.duration("for"),
        keep_firing_for_s=ctx.duration("keep_firing_for"),
        levels=_levels(ctx) if kind == "stage" else (), flags=flags, check=check,
        summary=ctx.template("summary"), summary_en=ctx.template("summary_en"),
        runbook=ctx.text("runbook", ""), inhibits=_names(ctx, "inhibits"))


def _names(ctx: _Ctx, key: str) -> tuple[str, ...]:
    v = ctx.node.get(key, ())
    items = (v,) if isinstance(v, str) else v
    if not isinstance(items, list | tuple) or not all(isinstance(x, str) for x in items):
        raise ctx.fail(key, "must be a rule name or a list of rule names")
    return tuple(items)


def parse_rules(doc: Any, *, source: str = "<memory>") -> RuleSet:
    """Validate a parsed document (``{rules: [...]}``)."""
    top = _Ctx(source, doc, "rules file")
    if not isinstance(doc, Mapping) or not isinstance(doc.get("rules"), list):
        raise top.fail(None, "expected a mapping with a list 'rules'")
    rules: list[Rule] = []
    seen: set[str] = set()
    for i, node in enumerate(doc["rules"]):
        if not isinstance(node, Mapping):
            raise top.fail(None, f"rule {i + 1} is not a mapping", doc["rules"])
        name = node.get("name")
        ctx = _Ctx(source, node, f"rule {name!r}" if name else f"rule {i + 1}")
        if not isinstance(name, str) or not NAME_RE.match(name):
            raise ctx.fail("name" if "name" in node else None,
                           f"a rule needs a name matching {NAME_RE.pattern}")
        if name in seen:
            raise ctx.fail("name", "a second rule with this name (names are alertnames: unique)")
        seen.add(name)
        rules.append(_rule(ctx, name))
    for i, rule in enumerate(rules):
        wrong = [n for n in rule.inhibits if n not in seen or n == rule.name]
        if wrong:
            ctx = _Ctx(source, doc["rules"][i], f"rule {rule.name!r}")
            raise ctx.fail("inhibits", f"{wrong[0]!r} is not another rule of this file")
    return RuleSet(tuple(rules), source)
