"""The dashboards, one module each; `build_all` returns them as Grafana JSON in a fixed order."""

from __future__ import annotations

from typing import Any

from grafana.dashboards import command_center, drilldown, kinds, pantau_self, rivers
from grafana.sources import Sources


def build_all(src: Sources) -> dict[str, dict[str, Any]]:
    """uid -> dashboard JSON; a kind the registry lacks leaves its panels (or board) out."""
    boards = [command_center.build(src), rivers.build(src)]
    for uid, (_, _, metrics) in kinds.BOARDS.items():
        if any(m[0] in src.kinds() for m in metrics):
            boards.append(kinds.build(src, uid))
    boards += [drilldown.build(src), pantau_self.build(src)]
    return {b["uid"]: b for b in boards}
