"""Why a message or a reading was not stored: one code, one slug, one sentence each.

Codes are ``uint8`` so that a whole batch's verdicts fit in one numpy array
(``TelemetryBatch.status``). ``OK`` is 0; every other code names a rejection and is counted
under its slug in ``/metrics`` and written with the payload to the dead-letter record.
"""

from __future__ import annotations

from enum import IntEnum


class Reason(IntEnum):
    """A verdict on a reading (row) or on a whole message."""

    OK = 0
    # Whole-message reasons: nothing in the message could be used.
    NOT_JSON = 1
    BAD_SCHEMA = 2
    UNKNOWN_DEVICE = 3
    BAD_TOPIC = 4
    PAYLOAD_TOO_LARGE = 5
    BAD_TIMESTAMP = 6
    MISSING_TIMESTAMP = 7
    TS_IN_FUTURE = 8
    TS_TOO_OLD = 9
    # A bug met while handling this message; it is set aside so that the others go on.
    INTERNAL_ERROR = 10
    # Per-reading reasons: the rest of the message is still stored.
    UNKNOWN_METRIC = 20
    NOT_A_NUMBER = 21
    NOT_FINITE = 22
    OUT_OF_RANGE = 23
    UNIT_MISMATCH = 24
    # Not a rejection: an exact copy of a reading already in the batch; stored once.
    DUPLICATE = 40
    # The database refused this single reading even when written alone.
    REFUSED_BY_DATABASE = 50

    @property
    def slug(self) -> str:
        return self.name.lower()

    @property
    def is_rejection(self) -> bool:
        return self not in (Reason.OK, Reason.DUPLICATE)


DESCRIPTIONS: dict[Reason, str] = {
    Reason.OK: "stored",
    Reason.NOT_JSON: "payload is neither JSON nor InfluxDB line protocol",
    Reason.BAD_SCHEMA: "payload parsed but does not have the expected shape",
    Reason.UNKNOWN_DEVICE: "the topic names a device that is not in the registry",
    Reason.BAD_TOPIC: "the topic does not match <prefix>/<site>/<device>/telemetry",
    Reason.PAYLOAD_TOO_LARGE: "payload is larger than ingest.max_payload_bytes",
    Reason.BAD_TIMESTAMP: "timestamp is neither epoch s/ms/us/ns nor RFC 3339",
    Reason.MISSING_TIMESTAMP: "reading has no device timestamp",
    Reason.TS_IN_FUTURE: "timestamp is further in the future than ingest.max_future_s",
    Reason.TS_TOO_OLD: "timestamp is further in the past than ingest.max_age_s",
    Reason.INTERNAL_ERROR: "handling the message raised an unexpected error (a bug in Pantau); "
                           "it was set aside so that ingest goes on",
    Reason.UNKNOWN_METRIC: "the device does not declare this metric in the registry",
    Reason.NOT_A_NUMBER: "value is not a number",
    Reason.NOT_FINITE: "value is NaN or infinite",
    Reason.OUT_OF_RANGE: "value is outside the metric's valid range",
    Reason.UNIT_MISMATCH: "the payload's unit differs from the registry's unit",
    Reason.DUPLICATE: "exact duplicate of another reading (same series, time and value)",
    Reason.REFUSED_BY_DATABASE: "the database refused this reading (HTTP 4xx) even on its own",
}
