"""What the two InfluxDB sinks share: the encoders for one series table (`LineEncoder`,
`TierEncoder`), the body of raw lines (`write_lines`), and the errors of a body that cannot be
encoded or a tier with nowhere to go. The sinks' contract is in `ingest.influx_sink`.
"""

from __future__ import annotations

from collections.abc import Sequence

from core.batch import TelemetryBatch
from devices.series import SeriesTable
from ingest.errors import SinkError
from ingest.lineproto import LineEncoder, TierEncoder
from ingest.schema import tier_setup, tier_target
from ingest.settings import InfluxSettings
from processors.domain.derived import Tier


class SinkBase:
    """The encoders of one table (built once, at construction, with no I/O) and the
    `SinkError` of a body that cannot be encoded (a broken invariant: ``retryable=False``)."""

    def __init__(self, settings: InfluxSettings, table: SeriesTable) -> None:
        self.settings = settings
        self.encoder = LineEncoder(table)
        self.tier_encoder = TierEncoder(table)

    def _tier_body(self, tier: Tier, where: str) -> bytes:
        try:
            return self.tier_encoder.encode(tier)
        except ValueError as e:
            raise SinkError(f"{where}: cannot encode: {e}", retryable=False) from e

    def _missing_tier(self, e: SinkError, tier: Tier) -> SinkError:
        fix = tier_setup(self.settings, tier.resolution_s)
        return SinkError(f"{e}; the tier {tier_target(self.settings, tier.resolution_s)!r} does "
                         f"not exist: create it once with `{fix}`", retryable=False,
                         status=e.status)

    def _body(self, batch: TelemetryBatch, where: str) -> bytes:
        try:
            return self.encoder.encode(batch)
        except ValueError as e:
            raise SinkError(f"{where}: cannot encode: {e}", retryable=False) from e

    @staticmethod
    def _lines_body(lines: Sequence[str], where: str) -> bytes:
        """One request body of ``lines``; a line that is empty or holds a line break (two
        points, or a broken one, in InfluxDB's eyes) is refused whole: ``retryable=False``."""
        for i, line in enumerate(lines):
            if not line.strip() or "\n" in line or "\r" in line:
                raise SinkError(f"{where}: line {i} is empty or holds a line break: "
                                f"{line[:80]!r}", retryable=False)
        return ("\n".join(lines) + "\n").encode() if lines else b""
