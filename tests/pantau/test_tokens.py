"""The token file: hashed at rest, created 0600 from the first byte, verified in constant time,
re-read when another process changes it; and ``pantau tokens create|list|revoke``."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest

from pantau.cli import main
from pantau.tokens import TokenError, TokenFile


def test_create_keeps_only_a_digest_and_verify_accepts_the_token(tmp_path: Path) -> None:
    tokens = TokenFile(tmp_path / "state" / "api-tokens.json")
    info, token = tokens.create("alice", "operator")
    assert token.startswith(f"pantau.{info.id}.") and len(token) == 7 + 8 + 1 + 43
    text = tokens.path.read_text()
    assert token not in text and token.split(".")[2] not in text
    assert json.loads(text)["tokens"][0]["sha256"] == info.sha256
    assert stat.S_IMODE(tokens.path.stat().st_mode) == 0o600
    assert TokenFile(tokens.path).verify(token) == info
    assert info.allows("viewer") and info.allows("operator") and not info.allows("admin")


@pytest.mark.parametrize("presented", [
    pytest.param(lambda t: t[:-1] + ("A" if t[-1] != "A" else "B"), id="one-char-off"),
    pytest.param(lambda t: t.replace("pantau.", "pantau.0", 1)[:len(t)], id="other-id"),
    pytest.param(lambda t: t + "x", id="too-long"),
    pytest.param(lambda t: "", id="empty"),
    pytest.param(lambda t: "pantau." + "0" * 8 + "." + "a" * 43, id="unknown-id"),
])
def test_anything_but_the_token_is_refused(tmp_path: Path, presented: Any) -> None:
    tokens = TokenFile(tmp_path / "t.json")
    _, token = tokens.create("alice", "viewer")
    assert tokens.verify(presented(token)) is None


def test_every_file_is_created_with_mode_0600(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """Spy on os.open (the real call goes through): each file is created by one call that
    already carries 0600, so no other user can open it between its creation and a chmod."""
    created: list[tuple[str, int]] = []
    real_open = os.open

    def spy(path: Any, flags: int, mode: int = 0o777, *a: Any, **kw: Any) -> int:
        if flags & os.O_CREAT:
            created.append((os.path.basename(path), mode))
        return real_open(path, flags, mode, *a, **kw)

    monkeypatch.setattr(os, "open", spy)
    old = os.umask(0)  # the mode must not rely on a umask
    try:
        TokenFile(tmp_path / "t.json").create("alice", "admin")
    finally:
        os.umask(old)
    assert created and all(mode == 0o600 for _, mode in created)
    for path in tmp_path.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.json", "t.json.lock"]


def test_revoke_counts_for_a_reader_without_a_restart(tmp_path: Path) -> None:
    server, cli = TokenFile(tmp_path / "t.json"), TokenFile(tmp_path / "t.json")
    info, token = cli.create("grafana", "viewer")
    _, other = cli.create("alice", "admin")
    assert server.verify(token) == info
    assert cli.revoke("grafana") == info
    assert server.verify(token) is None and server.verify(other) is not None
    cli.revoke(cli.read()[0].id)  # by id as well
    assert server.current() == {}


@pytest.mark.parametrize(("name", "role", "message"), [
    pytest.param("alice", "root", "role 'root' is not one of viewer, operator, admin", id="role"),
    pytest.param("al ice", "viewer", "token name 'al ice'", id="name"),
    pytest.param("bob", "viewer", "a token named 'bob' exists", id="duplicate"),
])
def test_bad_requests_are_refused(tmp_path: Path, name: str, role: str, message: str) -> None:
    tokens = TokenFile(tmp_path / "t.json")
    tokens.create("bob", "viewer")
    with pytest.raises(TokenError, match=message):
        tokens.create(name, role)
    with pytest.raises(TokenError, match="no token named 'carol'"):
        tokens.revoke("carol")


@pytest.mark.parametrize(("text", "mode", "message"), [
    pytest.param('{"tokens": []}', 0o620, "group or others may write it", id="group-writable"),
    pytest.param('{"tokens": []}', 0o602, "chmod 600", id="world-writable"),
    pytest.param("{", 0o600, "not valid JSON", id="json"),
    pytest.param('{"tokens": {}}', 0o600, "expected", id="shape"),
    pytest.param('{"tokens": [{"id": "x"}]}', 0o600, "token 1", id="fields"),
    pytest.param('{"tokens": [{"id": "0a0a0a0a", "name": "a", "role": "god", "created": "",'
                 ' "sha256": "' + "0" * 64 + '"}]}', 0o600, "bad role", id="role"),
])
def test_a_bad_file_is_refused_with_the_reason(tmp_path: Path, text: str, mode: int,
                                               message: str) -> None:
    path = tmp_path / "t.json"
    path.write_text(text)
    path.chmod(mode)
    with pytest.raises(TokenError, match=message):
        TokenFile(path).current()


def test_cli_create_list_revoke(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("PANTAU_STATE_DIR", str(tmp_path))
    assert main(["tokens", "create", "--role", "operator", "--name", "alice"]) == 0
    out, err = capsys.readouterr()
    token = out.strip()
    assert "shown only now" in err and "Authorization: Bearer" in err
    [info] = TokenFile(tmp_path / "api-tokens.json").read()
    assert TokenFile(tmp_path / "api-tokens.json").verify(token) == info
    assert main(["tokens", "list"]) == 0
    out, _ = capsys.readouterr()
    assert out.split() == [info.id, "operator", info.created, "alice"] and token not in out
    assert main(["tokens", "create", "--role", "operator", "--name", "alice"]) == 2
    assert "exists" in capsys.readouterr().err
    assert main(["tokens", "revoke", "alice"]) == 0
    assert TokenFile(tmp_path / "api-tokens.json").read() == []
