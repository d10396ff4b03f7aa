"""Signed one-click acknowledgement links.

A token is ``<alert id>.<expiry, epoch s>.<nonce>.<mac>``, the MAC an HMAC-SHA256 (truncated
to 128 bits, base64url) of the rest under the key `alerts.settings.AlertSettings.ack_secret`:
it binds the link to one alert and one expiry, and nothing in it can be changed without the
key. The nonce is derived from the alert's firing (its id and start), so every notification
of one firing carries the same link; the API records a nonce when it is used, and a replayed
link is refused. `verify` says why a token is refused; time is passed in.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from pathlib import Path

from core.errors import PantauError

TOKEN_RE = re.compile(r"^([0-9a-f]{16})\.(\d{1,12})\.([0-9a-f]{16})\.([A-Za-z0-9_-]{22})$")


class LinkError(PantauError):
    """A token is malformed, forged or expired; ``reason`` is one of those words."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Claim:
    alert_id: str
    expires_s: int
    nonce: str


def _mac(key: bytes, payload: str) -> str:
    digest = hmac.new(key, payload.encode(), hashlib.sha256).digest()[:16]
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def sign(key: bytes, alert_id: str, fired_ns: int, now_s: float, ttl_s: float) -> str:
    """The link token for one firing of ``alert_id``, valid at least ``ttl_s / 2`` from
    ``now_s`` (the expiry steps by ``ttl_s`` from the firing, so re-sent notifications carry
    the same link for a while)."""
    start = fired_ns // 1_000_000_000
    steps = max(1, int((now_s + ttl_s / 2 - start) // ttl_s) + 1)
    expires = int(start + steps * ttl_s)
    nonce = hashlib.sha256(f"{alert_id}/{fired_ns}/{expires}".encode()).hexdigest()[:16]
    payload = f"{alert_id}.{expires}.{nonce}"
    return f"{payload}.{_mac(key, payload)}"


def verify(key: bytes, token: str, now_s: float) -> Claim:
    """The claim of a valid token; `LinkError` (malformed, forged, expired) otherwise."""
    m = TOKEN_RE.match(token)
    if m is None:
        raise LinkError("malformed", "this acknowledgement link is malformed")
    alert_id, expires, nonce, mac = m.groups()
    if not hmac.compare_digest(mac, _mac(key, f"{alert_id}.{expires}.{nonce}")):
        raise LinkError("forged", "this acknowledgement link was not signed by Pantau")
    if int(expires) <= now_s:
        raise LinkError("expired", "this acknowledgement link has expired")
    return Claim(alert_id, int(expires), nonce)


def load_key(configured: str, path: Path) -> bytes:
    """The configured key, else the one kept in ``path`` (made once, mode 0600)."""
    if configured:
        return configured.encode()
    try:
        return bytes.fromhex(path.read_text().strip())
    except (OSError, ValueError):
        path.parent.mkdir(parents=True, exist_ok=True)
        key = secrets.token_bytes(32)
        path.write_text(key.hex())
        path.chmod(0o600)
        return key
