"""The root of Pantau's exceptions; each package derives its own from it."""

from __future__ import annotations


class PantauError(Exception):
    """Root of every error Pantau raises on purpose; the message carries its context."""
