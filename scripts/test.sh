#!/usr/bin/env bash
# The project's test command, from a fresh Debian machine to a full run:
#   .venv (created if missing) -> pip install -e '.[test,grafana]' (when pyproject.toml changed)
#   -> Debian packages (mosquitto, influxdb, victoria-metrics: installed if missing)
#   -> ruff -> mypy -> pytest "$@"
# Stops at the first failing step and names it; exit status non-zero on any failure.
set -uo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }
fail() { printf '\nFAILED step: %s\n' "$*" >&2; exit 1; }

PY=.venv/bin/python
if [ ! -x "$PY" ]; then
    step "create .venv"
    if ! python3 -m venv .venv; then
        # Debian ships venv separately; the project installs what it needs.
        rm -rf .venv
        if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
            apt-get install -y python3-venv || { apt-get update && apt-get install -y python3-venv; } \
                || fail "apt-get install python3-venv"
            python3 -m venv .venv || fail "python3 -m venv .venv"
        else
            fail "python3 -m venv .venv (on Debian: apt-get install -y python3-venv)"
        fi
    fi
fi

stamp=.venv/.pantau-pyproject.sha256
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    step "pip install -e '.[test,grafana]'"
    "$PY" -m pip install --quiet --disable-pip-version-check -e '.[test,grafana]' \
        || fail "pip install -e '.[test,grafana]'"
    echo "$want" > "$stamp"
fi

step "Debian packages (python -m pantau.devstack ensure)"
"$PY" -m pantau.devstack ensure || fail "python -m pantau.devstack ensure"

step "ruff check ."
.venv/bin/ruff check . || fail "ruff check ."

step "mypy"
.venv/bin/mypy || fail "mypy"

step "pytest $*"
.venv/bin/pytest "$@" || fail "pytest"

printf '\nAll steps passed.\n'
