"""``pantau tokens create|list|revoke``: the HTTP API's bearer tokens (`pantau.tokens`).

``create`` prints the token once on stdout (the file keeps only its SHA-256) and how to use
it on stderr, so ``TOKEN=$(pantau tokens create ...)`` captures the token alone. The file is
``http.tokens_file`` (default ``<state_dir>/api-tokens.json``); a running Pantau notices a
change on the next request.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from pantau.settings import Settings
from pantau.tokens import ROLES, token_file

ROLE_HELP = ("viewer: read devices and values; operator: also acknowledge and silence "
             "alerts; admin: also change devices")


def add_parser(sub: Any) -> None:
    """Add ``tokens`` to the ``pantau`` subparsers action ``sub``."""
    tok = sub.add_parser("tokens", help="create, list and revoke HTTP API tokens",
                         description=f"Bearer tokens for the HTTP API. Roles: {ROLE_HELP}.")
    tok.add_argument("--config", metavar="FILE", help="settings TOML file (http.tokens_file)")
    tsub = tok.add_subparsers(dest="tokens_command", metavar="ACTION", required=True)
    new = tsub.add_parser("create", help="create a token and print it (once)")
    new.add_argument("--name", required=True, help="who or what uses it, e.g. alice, grafana")
    new.add_argument("--role", required=True, choices=ROLES, help=ROLE_HELP)
    tsub.add_parser("list", help="one line per token: id, role, name, created (no secrets)")
    rev = tsub.add_parser("revoke", help="delete a token; it stops working at once")
    rev.add_argument("token", metavar="NAME_OR_ID")


def run_command(args: argparse.Namespace, settings: Settings) -> int:
    """Run ``pantau tokens ...``; errors are `PantauError` (exit status 2 from the CLI)."""
    tokens = token_file(settings)
    if args.tokens_command == "create":
        info, token = tokens.create(args.name, args.role)
        print(token)
        print(f"created token {info.id} ({info.role}) for {info.name!r} in {tokens.path}; it "
              "is shown only now. Use it as: curl -H 'Authorization: Bearer <token>' "
              f"http://{settings.http.listen}/api/devices", file=sys.stderr)
    elif args.tokens_command == "list":
        rows = tokens.read()
        for t in rows:
            print(f"{t.id}  {t.role:<8}  {t.created}  {t.name}")
        if not rows:
            print(f"no tokens in {tokens.path}", file=sys.stderr)
    else:
        gone = tokens.revoke(args.token)
        print(f"revoked token {gone.id} ({gone.role}) of {gone.name!r}", file=sys.stderr)
    return 0
