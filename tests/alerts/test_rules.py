"""The rules file: the shipped one compiles; mistakes are named with file and line."""

from __future__ import annotations

from pathlib import Path

import pytest

from alerts.compile import compile_rules
from alerts.rules import RulesError
from alerts.rules_yaml import load_rules
from tests.alerts.helpers import chain, rules


def test_shipped_rules_compile_against_the_shipped_registry() -> None:
    checks = compile_rules(rules(), chain().table)
    names = {c.rule.name for c in checks}
    assert {"FloodStage", "AirQualityISPU", "DeviceOffline", "Watchdog"} <= names
    flood = [c for c in checks if c.rule.name == "FloodStage"]
    assert [c.severity for c in flood] == ["warning", "high", "critical"]


@pytest.mark.parametrize(("text", "message"), [
    pytest.param("rules:\n  - name: X\n    kind: nope\n", ":3: rule 'X': field 'kind'",
                 id="unknown-kind"),
    pytest.param("rules:\n  - name: X\n    kind: threshold\n    metric: level_cm\n",
                 ":2: rule 'X': a threshold rule needs exactly one of", id="no-level"),
    pytest.param("rules:\n  - name: X\n    kind: threshold\n    metric: m\n    above: 5\n"
                 "    clear: 7\n", ":6: rule 'X': field 'clear': 7 is above", id="no-hysteresis"),
    pytest.param("rules:\n  - name: X\n    kind: offline\n    for: 5 minutes\n",
                 ":4: rule 'X': field 'for'", id="bad-duration"),
    pytest.param("rules:\n  - name: X\n    kind: offline\n  - name: X\n    kind: watchdog\n",
                 ":4: rule 'X': field 'name': a second rule", id="duplicate"),
    pytest.param("rules:\n  - name: X\n    kind: stage\n    metric: m\n    levels:\n"
                 "      - {at: 2, severity: loud, label: A}\n", "severity 'loud'",
                 id="bad-severity"),
    pytest.param("rules:\n  - name: X\n    kind: offline\n    colour: red\n",
                 ":4: rule 'X': field 'colour': unknown field", id="unknown-field"),
    pytest.param("rules:\n  - name: X\n    kind: offline\n    inhibits: [Y]\n",
                 ":4: rule 'X': field 'inhibits': 'Y' is not another rule", id="inhibits-unknown"),
    pytest.param("rules:\n  - name: X\n    kind: offline\n    inhibits: X\n",
                 ":4: rule 'X': field 'inhibits': 'X' is not another rule", id="inhibits-itself"),
])
def test_errors_name_file_and_line(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.rules.yaml"
    path.write_text(text)
    with pytest.raises(RulesError, match=r".*") as e:
        load_rules(path)
    assert str(e.value).startswith(str(path))
    assert message in str(e.value)


def test_a_metric_nobody_has_raises_nothing_and_says_so(tmp_path: Path) -> None:
    path = tmp_path / "r.yaml"
    path.write_text("rules:\n  - name: X\n    kind: threshold\n    metric: nope_cm\n    above: 1\n")
    said: list[str] = []
    assert compile_rules(load_rules(path), chain().table, said.append) == []
    assert said == [f"{path}:2: rule 'X': no device has metric 'nope_cm' (derived ones need "
                    "their processor): it raises nothing"]
