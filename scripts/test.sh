#!/usr/bin/env bash
# The project's test command, from a fresh Debian machine to a full run:
#   .venv (created if missing) -> pip install -e '.[test,grafana]' (when pyproject.toml changed)
#   -> Debian packages (mosquitto, influxdb, victoria-metrics: installed if missing)
#   -> ruff -> mypy -> pytest "$@"
# Stops at the first failing step and names it; exit status non-zero on any failure.
set -uo pipefail
cd "$(dirname "$0")/.."

. scripts/lib.sh

ensure_venv

step "Debian packages (python -m pantau.devstack ensure)"
"$PY" -m pantau.devstack ensure || fail "python -m pantau.devstack ensure"

step "ruff check ."
.venv/bin/ruff check . || fail "ruff check ."

step "mypy"
.venv/bin/mypy || fail "mypy"

step "pytest $*"
.venv/bin/pytest "$@" || fail "pytest"

printf '\nAll steps passed.\n'
