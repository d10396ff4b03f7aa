"""`pantau check`: the settings, the registry and the processor chain, offline."""

from __future__ import annotations

import pytest

from pantau.cli import main


def test_check_builds_the_chain(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("ok: 54 devices") and "processors calibration, range_check" in out


def test_check_names_an_unknown_processor(capsys: pytest.CaptureFixture[str],
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PANTAU_INGEST_PROCESSORS", "calibration,nope")
    assert main(["check"]) == 2
    assert "unknown processor(s) nope" in capsys.readouterr().err
