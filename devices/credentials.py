"""MQTT credentials as Mosquitto stores them: random passwords and `password_file` lines.

Provisioning (`devices.provision`) and the local stack (`pantau.devstack`) both write
Mosquitto password files; this module owns the format.
"""

from __future__ import annotations

import base64
import hashlib
import secrets

from core.errors import PantauError

#: The ingest service's MQTT identity.
PANTAU_USER = "pantau"


class CredentialError(PantauError):
    """A username that Mosquitto's password file cannot hold."""


def new_password() -> str:
    """A random URL-safe password (128 bits)."""
    return secrets.token_urlsafe(16)


def password_line(username: str, password: str, *, iterations: int = 101) -> str:
    """One `password_file` line in Mosquitto 2's `$7$` format (PBKDF2-SHA512, 12-byte salt),
    what ``mosquitto_passwd -b`` writes, without a process per user."""
    if not username or ":" in username or "\n" in username:
        raise CredentialError(f"MQTT username {username!r} is empty or contains ':' or a "
                              "newline")
    salt = secrets.token_bytes(12)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations)
    b64 = base64.b64encode
    return f"{username}:$7${iterations}${b64(salt).decode()}${b64(digest).decode()}"
