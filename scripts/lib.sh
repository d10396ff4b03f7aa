# Shared by scripts/run.sh and scripts/test.sh: messages and the project's virtualenv.
# shellcheck shell=bash
step() { printf '\n==> %s\n' "$*"; }
fail() { printf '\nFAILED step: %s\n' "$*" >&2; exit 1; }

PY=.venv/bin/python

# Create .venv when missing and (re)install the project when pyproject.toml changed.
ensure_venv() {
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
    local stamp=.venv/.pantau-pyproject.sha256 want
    want=$(sha256sum pyproject.toml | cut -d' ' -f1)
    if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
        step "pip install -e '.[test,grafana]'"
        "$PY" -m pip install --quiet --disable-pip-version-check -e '.[test,grafana]' \
            || fail "pip install -e '.[test,grafana]'"
        echo "$want" > "$stamp"
    fi
}
