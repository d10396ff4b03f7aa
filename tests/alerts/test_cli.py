"""`pantau alerts config|rules-doc` and the rules part of `pantau check`: the shipped files are
current, and Debian's amtool accepts what the generator writes."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from pantau.cli import main
from pantau.devstack.packages import binary, ensure_packages

ROOT = Path(__file__).parents[2]
SHIPPED = ["--deadman", "http://deadmans-switch.example.org/ping",
           *(f"--email={t}{s}={t}-{'kepala' if s else 'oncall'}@example.org"
             for t in ("bpbd", "dlh", "dishub", "dinkes", "it") for s in ("", "-supervisor")),
           "--email=tickets=pemeliharaan@example.org",
           "--smtp", "smtp.example.org:587", "--smtp-from", "pantau@example.org",
           "--smtp-username", "pantau", "--smtp-password-file", "/run/secrets/smtp_password"]


def test_rule_reference_is_current(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["alerts", "rules-doc"]) == 0
    assert capsys.readouterr().out == (ROOT / "docs/rules.md").read_text(), \
        "docs/rules.md is stale: run `pantau alerts rules-doc > docs/rules.md`"


def test_shipped_alertmanager_config_is_current_and_valid(tmp_path: Path) -> None:
    assert main(["alerts", "config", "--out", str(tmp_path), *SHIPPED]) == 0
    for name in ("alertmanager.yml", "pantau.tmpl"):
        assert (tmp_path / name).read_text() == (ROOT / "deploy/alertmanager" / name) \
            .read_text(), f"deploy/alertmanager/{name} is stale: see README.md, Alerts"
    ensure_packages("prometheus-alertmanager")
    done = subprocess.run([binary("amtool"), "check-config", str(tmp_path / "alertmanager.yml")],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


def test_telegram_token_from_a_file_only_into_a_private_file(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("123456:ABC\n")
    out = tmp_path / "am"
    assert main(["alerts", "config", "--out", str(out), "--telegram-token-file", str(token),
                 "--telegram-chat", "bpbd=-100123", "--webhook", "http://127.0.0.1:9/{receiver}"
                 ]) == 0
    conf = out / "alertmanager.yml"
    assert "123456:ABC" in conf.read_text() and conf.stat().st_mode & 0o077 == 0
    assert "url: http://127.0.0.1:9/bpbd-supervisor" in conf.read_text()
    done = subprocess.run([binary("amtool"), "check-config", str(conf)], capture_output=True,
                          text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


def test_check_names_the_line_of_a_bad_rule(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.rules.yaml"
    bad.write_text("rules:\n  - name: Flood\n    kind: stage\n    metric: flood_stage\n")
    monkeypatch.setenv("PANTAU_ALERTS_RULES", str(bad))
    assert main(["check"]) == 2
    assert f"{bad}:2: rule 'Flood': field 'levels'" in capsys.readouterr().err
    monkeypatch.delenv("PANTAU_ALERTS_RULES")
    assert main(["check"]) == 0
    assert "alert rules" in capsys.readouterr().out


def test_generated_inhibitions_and_grouping() -> None:
    from alerts.amconfig import Channels, generate
    from tests.alerts.helpers import rules

    doc = generate(rules(), Channels())
    inhibit = {(tuple(r["source_matchers"]), tuple(r["target_matchers"])): r["equal"]
               for r in doc["inhibit_rules"]}
    assert inhibit[(('alertname="FloodStage"', 'stage="Awas"'),
                    ('alertname="FloodStage"', 'stage=~"Waspada|Siaga"'))] == ["device"]
    assert inhibit[(('alertname=~"DeviceOffline"',), ('alertname=~"SensorStuck"',))] \
        == ["device"]
    bpbd = next(r for r in doc["route"]["routes"] if r["matchers"] == ['team="bpbd"'])
    assert bpbd["group_by"] == ["alertname", "river", "stage"]
