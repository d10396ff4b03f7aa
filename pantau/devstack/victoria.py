"""Debian's VictoriaMetrics (single node) as a child process: an InfluxDB-2-compatible write
endpoint (``/api/v2/write`` takes line protocol, no auth) for tests of the v2 write path.

Line protocol ``m,tag=a f=1 <ts>`` is stored as the series ``m_f{tag="a"}`` (``<measurement>_
<field>``, tags as labels); `export()` reads series back through ``/api/v1/export``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from pantau.devstack._http import request
from pantau.devstack._process import Daemon, DevstackError, free_port, writable_dir
from pantau.devstack.packages import binary


class VictoriaMetrics(Daemon):
    """VictoriaMetrics on ``127.0.0.1:port`` (a free port by default) in ``workdir``."""

    name = "victoria-metrics"

    def __init__(self, workdir: str | Path, *, port: int | None = None) -> None:
        super().__init__(workdir)
        self.port = port or free_port()
        self.data_dir = self.workdir / "data"

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``."""
        return f"http://{self.host}:{self.port}"

    def _prepare(self) -> list[str]:
        writable_dir(self.data_dir)
        return [binary("victoria-metrics"), f"-httpListenAddr={self.host}:{self.port}",
                f"-storageDataPath={self.data_dir}", "-retentionPeriod=100y",
                # Written points become visible to export at once, not 30 s later.
                "-search.latencyOffset=0s", "-search.disableCache"]

    def _ready(self) -> bool:
        try:
            return request("GET", f"{self.url}/health", timeout=1.0).status == 200
        except OSError:
            return False

    def flush(self) -> None:
        """Make recent writes searchable now (they are buffered for about a second)."""
        request("GET", f"{self.url}/internal/force_flush")

    def export(self, match: str = '{__name__!=""}') -> list[dict[str, Any]]:
        """Every series matching the selector ``match``, after a `flush()`: a list of
        ``{"metric": {"__name__": ..., <labels>}, "values": [...], "timestamps": [ms...]}``."""
        self.flush()
        resp = request("GET", f"{self.url}/api/v1/export?{urlencode({'match[]': match})}")
        if resp.status != 200:
            raise DevstackError(f"export {match!r} from {self.url}: HTTP {resp.status}: "
                                f"{resp.text.strip()}")
        return [json.loads(line) for line in resp.text.splitlines() if line.strip()]
