"""The Alertmanager configuration Pantau ships, generated from a rule set (``pantau alerts
config`` writes ``deploy/alertmanager/alertmanager.yml`` and ``pantau.tmpl``).

- Routes by ``team`` (bpbd floods, dlh air, dishub traffic and street lights, dinkes the cold
  chain, it devices and Pantau), each to that team's receiver; an escalated copy (label
  ``tier`` 2 and up) to the team's supervisors; the ``Watchdog`` to the dead-man's switch,
  repeated every minute; ``info`` alerts (a broken street lamp) to ``tickets``, which pages
  nobody (a webhook into a maintenance queue, or an e-mail), once a day.
- Grouping: floods per ``alertname``, ``river`` and ``stage`` (a flood across nine gauges of
  one river is one notification per river and stage); the others per ``alertname``,
  ``stage`` and ``site``.
- Inhibition: for every stage rule a higher stage mutes the lower ones of the same device
  (Awas inhibits Siaga and Waspada of the same gauge); a rule mutes the rules it names in
  ``inhibits`` for the same device (a fridge's heat alarm its earlier warm warning); a device
  offline mutes its data-quality alerts.
- Receivers: a webhook (the local receiver, or an on-call system), Telegram (``api_url`` may
  point at a stand-in), e-mail; messages in Bahasa Indonesia from ``pantau.tmpl`` with the
  values, units, acknowledgement and dashboard links. Secrets never go in: the SMTP password
  is ``auth_password_file``; Alertmanager 0.25's Telegram has no token file, so the token is
  written only when `Channels.telegram_token` is given (from a file or the environment, by
  ``pantau alerts config``), into a file outside the repository.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ruamel.yaml import YAML

from alerts.rules import TEAMS, RuleSet

FLOOD_GROUP = ["alertname", "river", "stage"]
OTHER_GROUP = ["alertname", "stage", "site"]


@dataclass(frozen=True, slots=True)
class Channels:
    """Where notifications go. ``webhook``: URL every team's receiver also posts to, where
    ``{receiver}`` becomes the receiver's name (empty: none); ``emails``/``telegram_chats``:
    team -> address / chat id (``<team>-supervisor`` for tier 2 and up); ``deadman``: the
    Watchdog's URL."""

    webhook: str = ""
    deadman: str = ""
    emails: Mapping[str, str] = field(default_factory=dict)
    telegram_chats: Mapping[str, int] = field(default_factory=dict)
    telegram_api_url: str = ""
    telegram_token: str = ""
    smtp_smarthost: str = ""
    smtp_from: str = "pantau@localhost"
    smtp_username: str = ""
    smtp_password_file: str = ""
    smtp_require_tls: bool = True
    group_wait_s: int = 30
    group_interval_s: int = 300
    repeat_interval_s: int = 4 * 3600


def _receiver(name: str, ch: Channels, send_resolved: bool = True) -> dict[str, Any]:
    out: dict[str, Any] = {"name": name}
    if ch.webhook:
        out["webhook_configs"] = [{"url": ch.webhook.replace("{receiver}", name),
                                   "send_resolved": send_resolved}]
    if name in ch.emails and ch.smtp_smarthost:
        out["email_configs"] = [{
            "to": ch.emails[name], "send_resolved": send_resolved,
            "headers": {"Subject": '{{ template "pantau.subject" . }}'},
            "html": '{{ template "pantau.email" . }}', "text": '{{ template "pantau.text" . }}'}]
    if name in ch.telegram_chats and ch.telegram_token:
        tg: dict[str, Any] = {"bot_token": ch.telegram_token, "chat_id": ch.telegram_chats[name],
                              "message": '{{ template "pantau.telegram" . }}',
                              "parse_mode": "HTML", "send_resolved": send_resolved}
        if ch.telegram_api_url:
            tg["api_url"] = ch.telegram_api_url
        out["telegram_configs"] = [tg]
    return out


def _inhibitions(rules: RuleSet) -> list[dict[str, Any]]:
    out = []
    offline = [r.name for r in rules if r.kind == "offline"]
    quality = [r.name for r in rules if r.kind == "quality"]
    for rule in rules:
        labels = [lv.label for lv in rule.levels]
        for i, higher in enumerate(labels[1:], start=1):
            out.append({"source_matchers": [f'alertname="{rule.name}"', f'stage="{higher}"'],
                        "target_matchers": [f'alertname="{rule.name}"',
                                            f'stage=~"{"|".join(labels[:i])}"'],
                        "equal": ["device"]})
        if rule.inhibits:
            out.append({"source_matchers": [f'alertname="{rule.name}"'],
                        "target_matchers": [f'alertname=~"{"|".join(rule.inhibits)}"'],
                        "equal": ["device"]})
    if offline and quality:
        out.append({"source_matchers": [f'alertname=~"{"|".join(offline)}"'],
                    "target_matchers": [f'alertname=~"{"|".join(quality)}"'],
                    "equal": ["device"]})
    return out


def _routes(ch: Channels) -> list[dict[str, Any]]:
    routes: list[dict[str, Any]] = [{
        "matchers": ['alertname="Watchdog"'], "receiver": "deadman", "group_wait": "0s",
        "group_interval": "1m", "repeat_interval": "1m"}, {
        "matchers": ['severity="info"'], "receiver": "tickets", "group_by": list(OTHER_GROUP),
        "repeat_interval": "24h"}]
    for team in TEAMS:
        group = FLOOD_GROUP if team == "bpbd" else OTHER_GROUP
        routes.append({"matchers": [f'team="{team}"', 'tier=~"[2-9]"'],
                       "receiver": f"{team}-supervisor", "group_by": [*group, "tier"]})
        routes.append({"matchers": [f'team="{team}"'], "receiver": team,
                       "group_by": list(group)})
    return routes


def generate(rules: RuleSet, ch: Channels) -> dict[str, Any]:
    """The configuration as a document (see the module docstring)."""
    names = [n for t in TEAMS for n in (t, f"{t}-supervisor")] + ["tickets"]
    deadman: dict[str, Any] = {"name": "deadman"}
    if ch.deadman:
        deadman["webhook_configs"] = [{"url": ch.deadman, "send_resolved": False}]
    doc: dict[str, Any] = {
        "global": {"resolve_timeout": "5m"},
        "templates": ["pantau.tmpl"],
        "route": {"receiver": "it", "group_by": list(OTHER_GROUP),
                  "group_wait": f"{ch.group_wait_s}s", "group_interval": f"{ch.group_interval_s}s",
                  "repeat_interval": f"{ch.repeat_interval_s}s", "routes": _routes(ch)},
        "inhibit_rules": _inhibitions(rules),
        "receivers": [_receiver(n, ch) for n in names] + [deadman],
    }
    if ch.smtp_smarthost:
        doc["global"] |= {"smtp_smarthost": ch.smtp_smarthost, "smtp_from": ch.smtp_from,
                          "smtp_require_tls": ch.smtp_require_tls}
        if ch.smtp_username:
            doc["global"] |= {"smtp_auth_username": ch.smtp_username,
                              "smtp_auth_password_file": ch.smtp_password_file}
    return doc


def render(rules: RuleSet, ch: Channels) -> str:
    """`generate` as YAML text, with a header saying where it came from."""
    out = io.StringIO()
    yaml = YAML()
    yaml.default_flow_style = False
    yaml.width = 100
    yaml.dump(generate(rules, ch), out)
    return ("# Generated by `pantau alerts config` from the alert rules; do not edit by hand.\n"
            "# Secrets are not in here: see README.md, Alerts.\n" + out.getvalue())
