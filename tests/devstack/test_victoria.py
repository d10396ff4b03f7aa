"""VictoriaMetrics as an InfluxDB-2-compatible write target (``/api/v2/write``)."""

from __future__ import annotations

from pantau.devstack import VictoriaMetrics
from pantau.devstack._http import request


def test_line_protocol_write_exports_back(victoria: VictoriaMetrics) -> None:
    lines = (b"vm_river,device=wl-1,site=kanigoro level_cm=123.5,ok=1i 1700000000000000000\n"
             b"vm_river,device=wl-1,site=kanigoro level_cm=124 1700000060000000000\n")
    resp = request("POST", f"{victoria.url}/api/v2/write?org=pantau&bucket=pantau&precision=ns",
                   data=lines)
    assert resp.status == 204, resp.text
    series = {s["metric"]["__name__"]: s for s in victoria.export('{__name__=~"vm_river_.*"}')}
    assert set(series) == {"vm_river_level_cm", "vm_river_ok"}
    level = series["vm_river_level_cm"]
    assert level["metric"] == {"__name__": "vm_river_level_cm", "device": "wl-1",
                               "site": "kanigoro"}
    assert level["values"] == [123.5, 124]
    assert level["timestamps"] == [1700000000000, 1700000060000]  # milliseconds
    assert series["vm_river_ok"]["values"] == [1]


def test_malformed_line_protocol_is_accepted_silently(victoria: VictoriaMetrics) -> None:
    # Unlike InfluxDB (400 for the whole request), VictoriaMetrics 1.79 answers 204 to
    # anything: a line it cannot parse vanishes, and a non-numeric field value is stored as
    # 0. A test of line-protocol validity must use InfluxDB, not this.
    body = (b"vm_bad,device=wl-1 level_cm=oops 1700000000000000000\n"
            b'vm_bad,device=wl-2 level_cm="str" 1700000000000000000\n'
            b"vm_bad,device=wl-3\n"
            b"not line protocol at all\n")
    resp = request("POST", f"{victoria.url}/api/v2/write?org=pantau&bucket=pantau", data=body)
    assert resp.status == 204, resp
    exported = victoria.export('{__name__=~"vm_bad.*|not.*"}')
    assert sorted((s["metric"]["device"], s["values"]) for s in exported) == [
        ("wl-1", [0]), ("wl-2", [0])]
