"""``pantau alerts config|rules-doc`` and the rules part of ``pantau check``.

``pantau alerts config`` writes the Alertmanager configuration generated from the rules
(`alerts.amconfig`) and its templates (``pantau.tmpl``) into a directory (default
``deploy/alertmanager``). Receivers come from options; secrets only from files or the
environment: ``--smtp-password-file`` is referenced, not read (Alertmanager reads it);
the Telegram bot token (Alertmanager 0.25 has no token file) is read from
``--telegram-token-file`` or ``PANTAU_TELEGRAM_BOT_TOKEN`` and written into the output, which
is then made 0600: keep that directory out of the repository.
"""

from __future__ import annotations

import argparse
import os
import sys
from importlib import resources
from pathlib import Path

from alerts.amconfig import Channels, render
from alerts.compile import compile_rules, describe
from alerts.reference import reference
from alerts.service import configured_rules
from core.errors import PantauError
from devices.series import SeriesTable
from pantau.settings import Settings


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("alerts", help="the Alertmanager configuration and the rule reference")
    p.add_argument("--config", metavar="FILE", help="settings TOML file (alerts.rules)")
    cmds = p.add_subparsers(dest="alerts_command", metavar="SUBCOMMAND", required=True)
    cfg = cmds.add_parser("config", help="write alertmanager.yml and pantau.tmpl for the rules")
    cfg.add_argument("--out", type=Path, default=Path("deploy/alertmanager"), metavar="DIR")
    cfg.add_argument("--webhook", default="", metavar="URL",
                     help="every receiver posts here too; {receiver} becomes its name")
    cfg.add_argument("--deadman", default="", metavar="URL", help="the Watchdog's receiver")
    cfg.add_argument("--email", action="append", default=[], metavar="RECEIVER=ADDRESS",
                     help="e.g. bpbd=siaga@bpbd.example or bpbd-supervisor=... (repeat)")
    cfg.add_argument("--telegram-chat", action="append", default=[], metavar="RECEIVER=ID")
    cfg.add_argument("--telegram-api-url", default="", metavar="URL")
    cfg.add_argument("--telegram-token-file", type=Path, metavar="FILE")
    cfg.add_argument("--smtp", default="", metavar="HOST:PORT")
    cfg.add_argument("--smtp-from", default="pantau@localhost")
    cfg.add_argument("--smtp-username", default="")
    cfg.add_argument("--smtp-password-file", default="", metavar="FILE")
    cfg.add_argument("--group-wait", type=int, default=30, metavar="S")
    cfg.add_argument("--group-interval", type=int, default=300, metavar="S")
    cfg.add_argument("--repeat-interval", type=int, default=4 * 3600, metavar="S")
    cmds.add_parser("rules-doc", help="print the rule reference (Markdown, docs/rules.md)")


def _pairs(items: list[str], what: str) -> dict[str, str]:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key or not value:
            raise PantauError(f"{what} {item!r}: expected RECEIVER=VALUE")
        out[key] = value
    return out


def _token(args: argparse.Namespace) -> str:
    if args.telegram_token_file:
        try:
            return str(args.telegram_token_file.read_text()).strip()
        except OSError as e:
            raise PantauError(f"{args.telegram_token_file}: {e.strerror}") from e
    return os.environ.get("PANTAU_TELEGRAM_BOT_TOKEN", "")


def write_config(args: argparse.Namespace, settings: Settings) -> int:
    chats = {k: int(v) for k, v in _pairs(args.telegram_chat, "--telegram-chat").items()}
    token = _token(args)
    channels = Channels(
        webhook=args.webhook, deadman=args.deadman, emails=_pairs(args.email, "--email"),
        telegram_chats=chats, telegram_api_url=args.telegram_api_url, telegram_token=token,
        smtp_smarthost=args.smtp, smtp_from=args.smtp_from, smtp_username=args.smtp_username,
        smtp_password_file=args.smtp_password_file, group_wait_s=args.group_wait,
        group_interval_s=args.group_interval, repeat_interval_s=args.repeat_interval)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    conf = out / "alertmanager.yml"
    conf.write_text(render(configured_rules(settings.alerts), channels), encoding="utf-8")
    if token and chats:
        conf.chmod(0o600)
        print(f"{conf} holds the Telegram bot token (mode 0600): keep it out of the repository",
              file=sys.stderr)
    template = resources.files("alerts") / "data" / "pantau.tmpl"
    (out / "pantau.tmpl").write_text(template.read_text(encoding="utf-8"), encoding="utf-8")
    print(f"wrote {conf} and {out / 'pantau.tmpl'}")
    return 0


def check_rules(settings: Settings, table: SeriesTable) -> str:
    """For ``pantau check``: validate and compile the rules; one line saying what they raise
    (warnings go to stderr). Raises `alerts.rules.RulesError` with file and line."""
    rules = configured_rules(settings.alerts)
    checks = compile_rules(rules, table, lambda w: print(f"warning: {w}", file=sys.stderr))
    return f"alert rules {rules.source}: {len(rules)} rules: {describe(checks)}"


def run_command(args: argparse.Namespace, settings: Settings) -> int:
    if args.alerts_command == "config":
        return write_config(args, settings)
    if args.alerts_command == "rules-doc":
        sys.stdout.write(reference(configured_rules(settings.alerts)))
        return 0
    return 1
