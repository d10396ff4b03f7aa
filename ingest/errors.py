"""The ingest package's exceptions."""

from __future__ import annotations

from core.errors import PantauError


class SinkError(PantauError):
    """A sink's single write attempt failed.

    ``retryable`` says whether the same batch may succeed later (network, 5xx, 429); a
    non-retryable error means the data itself was refused. ``retry_after`` is the server's
    ``Retry-After`` in seconds, when it sent one.
    """

    def __init__(self, message: str, *, retryable: bool, retry_after: float | None = None,
                 status: int | None = None) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.retry_after = retry_after
        self.status = status
