"""API tokens: bearer tokens with a role, kept hashed in one file (``http.tokens_file``).

A token reads ``pantau.<id>.<secret>``: the ``id`` (8 hex digits) names it in listings and
logs, the ``secret`` is 256 random bits. The file keeps, per token, its id, a name, the role,
the creation time and the SHA-256 of the whole token; the token itself exists only in what
`TokenFile.create` returns, once. A 256-bit random secret needs no salt nor a slow hash: its
digest can be neither reversed nor guessed. `TokenFile.verify` compares digests with
`hmac.compare_digest`, in constant time.

Roles are ordered, each allowing what the ones before it allow: ``viewer`` reads devices and
values, ``operator`` also acknowledges and silences alerts, ``admin`` also changes devices.

The file is JSON (``{"tokens": [{"id", "name", "role", "created", "sha256"}]}``), rewritten
whole under an exclusive lock: a temporary file created with mode 0600 (never readable by
others, not even for an instant), written, synced and renamed over the old one, so a reader
sees the old list or the new one. A file that group or others may write is refused: whoever
can add a digest can make themselves admin. The server re-reads the file when it changes
(`TokenFile.current` compares its inode, size and mtime on each call), so a token created or
revoked with ``pantau tokens`` counts from the next request, without a restart.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import hashlib
import hmac
import json
import os
import re
import secrets
import stat
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from core.errors import PantauError

if TYPE_CHECKING:
    from pantau.settings import Settings

Role = Literal["viewer", "operator", "admin"]
ROLES: tuple[Role, ...] = ("viewer", "operator", "admin")
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")
TOKEN_RE = re.compile(r"^pantau\.([0-9a-f]{8})\.[A-Za-z0-9_-]{43}$")
_NO_DIGEST = hashlib.sha256(b"").hexdigest()  # compared against when the id is unknown


class TokenError(PantauError):
    """The token file cannot be read or written, or a request to change it is wrong."""


@dataclass(frozen=True, slots=True)
class TokenInfo:
    """One token as the file keeps it (no secret in it; safe to print)."""

    id: str
    name: str
    role: Role
    created: str  # RFC 3339 UTC
    sha256: str

    def allows(self, needed: Role) -> bool:
        return ROLES.index(self.role) >= ROLES.index(needed)


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class TokenFile:
    """The token file at ``path``; the constructor does no I/O. `read`, `create` and `revoke`
    are for the CLI; `current` and `verify` for the server (one thread, the event loop)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._stamp: tuple[int, int, int] | None = None
        self._by_id: dict[str, TokenInfo] = {}

    def read(self) -> list[TokenInfo]:
        """Every token, oldest first; none when the file does not exist."""
        try:
            with open(self.path, encoding="utf-8") as fh:
                mode = os.fstat(fh.fileno()).st_mode
                text = fh.read()
        except FileNotFoundError:
            return []
        except (OSError, UnicodeDecodeError) as e:
            raise TokenError(f"{self.path}: cannot read the API tokens: {e}") from e
        if mode & (stat.S_IWGRP | stat.S_IWOTH):
            raise TokenError(f"{self.path}: refused, group or others may write it "
                             f"(mode {stat.filemode(mode)}); run: chmod 600 {self.path}")
        return _parse(text, self.path)

    def current(self) -> dict[str, TokenInfo]:
        """Id -> token, re-read when the file changed since the last call."""
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            self._stamp, self._by_id = None, {}
            return self._by_id
        except OSError as e:
            raise TokenError(f"{self.path}: cannot read the API tokens: {e.strerror}") from e
        stamp = (st.st_ino, st.st_size, st.st_mtime_ns)
        if stamp != self._stamp:
            self._by_id = {t.id: t for t in self.read()}
            self._stamp = stamp
        return self._by_id

    def verify(self, token: str) -> TokenInfo | None:
        """The token's record when ``token`` is one of the file's, else None."""
        m = TOKEN_RE.match(token)
        known = self.current().get(m.group(1)) if m else None
        expected = known.sha256 if known else _NO_DIGEST
        return known if hmac.compare_digest(digest(token), expected) and known else None

    def create(self, name: str, role: str, *, now: dt.datetime | None = None
               ) -> tuple[TokenInfo, str]:
        """Add a token; return its record and the token (shown once, never stored)."""
        if not NAME_RE.match(name):
            raise TokenError(f"token name {name!r}: use 1-64 letters, digits, '_', '.', '@' "
                             "or '-', starting with a letter or digit")
        if role not in ROLES:
            raise TokenError(f"role {role!r} is not one of {', '.join(ROLES)}")
        with self._locked():
            tokens = self.read()
            if any(t.name == name for t in tokens):
                raise TokenError(f"a token named {name!r} exists; revoke it first or pick "
                                 "another name")
            ids = {t.id for t in tokens}
            token_id = secrets.token_hex(4)
            while token_id in ids:
                token_id = secrets.token_hex(4)
            token = f"pantau.{token_id}.{secrets.token_urlsafe(32)}"
            when = (now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
            info = TokenInfo(token_id, name, role,
                             when.strftime("%Y-%m-%dT%H:%M:%SZ"), digest(token))
            self._write([*tokens, info])
        return info, token

    def revoke(self, name_or_id: str) -> TokenInfo:
        """Remove the token with that name or id; return its record."""
        with self._locked():
            tokens = self.read()
            gone = next((t for t in tokens if name_or_id in (t.name, t.id)), None)
            if gone is None:
                raise TokenError(f"no token named {name_or_id!r} in {self.path}")
            self._write([t for t in tokens if t is not gone])
        return gone

    # -- the file ----------------------------------------------------------------------------
    def _write(self, tokens: list[TokenInfo]) -> None:
        text = json.dumps({"tokens": [asdict(t) for t in tokens]}, indent=1) + "\n"
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(text)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
        except OSError as e:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise TokenError(f"{self.path}: cannot write the API tokens: {e.strerror}") from e

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """Serialise read-modify-write between concurrent ``pantau tokens`` commands."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path.with_name(self.path.name + ".lock"),
                         os.O_WRONLY | os.O_CREAT, 0o600)
        except OSError as e:
            raise TokenError(f"{self.path}: cannot lock the API tokens: {e.strerror}") from e
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)


def _parse(text: str, path: Path) -> list[TokenInfo]:
    try:
        doc: Any = json.loads(text)
    except json.JSONDecodeError as e:
        raise TokenError(f"{path}: not valid JSON: {e}") from e
    rows = doc.get("tokens") if isinstance(doc, dict) else None
    if not isinstance(rows, list):
        raise TokenError(f"{path}: expected {{\"tokens\": [...]}}")
    out: list[TokenInfo] = []
    for i, row in enumerate(rows):
        try:
            info = TokenInfo(**row)
        except TypeError as e:
            raise TokenError(f"{path}: token {i + 1}: {e}") from e
        if not all(isinstance(v, str) for v in asdict(info).values()):
            raise TokenError(f"{path}: token {i + 1}: every field must be a string")
        if info.role not in ROLES or not re.fullmatch(r"[0-9a-f]{64}", info.sha256):
            raise TokenError(f"{path}: token {i + 1} ({info.name!r}): bad role or digest")
        out.append(info)
    return out


def token_file(settings: Settings) -> TokenFile:
    """The token file the settings name (``http.tokens_file``, else under ``state_dir``)."""
    return TokenFile(settings.http.tokens_file
                     or Path(settings.state_dir) / "api-tokens.json")
