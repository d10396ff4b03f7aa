"""The offline checks every generated dashboard passes (Grafana itself cannot run here).

`problems(dashboard, datasource_uids)` returns what is wrong, one sentence each, naming the
dashboard and the panel: panel ids and the dashboard uid present and unique, panels inside the
24-column grid and not overlapping, every datasource reference (panel, target, annotation,
variable) resolving to a provisioned data source, every variable a query or an alias uses
defined by the dashboard, every panel with at least one query (text and row panels aside).
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping
from typing import Any

from grafana.render import used_variables

GRID_COLUMNS = 24
_NO_QUERIES = frozenset({"row", "text"})


def _refs(panel: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    if isinstance(panel.get("datasource"), Mapping):
        yield panel["datasource"]
    for t in panel.get("targets") or []:
        if isinstance(t.get("datasource"), Mapping):
            yield t["datasource"]


def _overlaps(a: Mapping[str, int], b: Mapping[str, int]) -> bool:
    return (a["x"] < b["x"] + b["w"] and b["x"] < a["x"] + a["w"]
            and a["y"] < b["y"] + b["h"] and b["y"] < a["y"] + a["h"])


def problems(doc: Mapping[str, Any], datasource_uids: Collection[str]) -> list[str]:
    where = f"dashboard {doc.get('uid')!r}"
    out: list[str] = []
    if not doc.get("uid") or not doc.get("title"):
        out.append(f"{where}: needs a uid and a title")
    panels = list(doc.get("panels") or [])
    ids = [p.get("id") for p in panels]
    if None in ids or len(set(ids)) != len(ids):
        out.append(f"{where}: panel ids must be present and unique: {ids}")
    defined = {v["name"] for v in (doc.get("templating") or {}).get("list") or []}
    refs: list[tuple[str, Mapping[str, Any]]] = []
    for p in panels:
        name = f"{where} panel {p.get('id')} {p.get('title')!r}"
        g = p.get("gridPos") or {}
        if not all(isinstance(g.get(k), int) for k in ("x", "y", "w", "h")):
            out.append(f"{name}: no grid position")
            continue
        if g["x"] < 0 or g["w"] <= 0 or g["h"] <= 0 or g["x"] + g["w"] > GRID_COLUMNS:
            out.append(f"{name}: outside the {GRID_COLUMNS}-column grid: {g}")
        refs += [(name, r) for r in _refs(p)]
        targets = p.get("targets") or []
        if p.get("type") not in _NO_QUERIES and not targets:
            out.append(f"{name}: no query")
        for t in targets:
            for var in sorted(used_variables(f"{t.get('query', '')} {t.get('alias', '')}")
                              - defined):
                out.append(f"{name}: uses ${var}, which the dashboard does not define")
    for i, a in enumerate(panels):
        for b in panels[i + 1:]:
            ga, gb = a.get("gridPos"), b.get("gridPos")
            if ga and gb and all(k in ga and k in gb for k in "xywh") and _overlaps(ga, gb):
                out.append(f"{where}: panels {a.get('id')} and {b.get('id')} overlap")
    for ann in (doc.get("annotations") or {}).get("list") or []:
        refs.append((f"{where} annotation {ann.get('name')!r}", ann.get("datasource") or {}))
        query = str((ann.get("target") or {}).get("query", ""))
        for var in sorted(used_variables(query) - defined):
            out.append(f"{where} annotation: uses ${var}, which is not defined")
    for v in (doc.get("templating") or {}).get("list") or []:
        if isinstance(v.get("datasource"), Mapping):
            refs.append((f"{where} variable {v['name']!r}", v["datasource"]))
        for var in sorted(used_variables(str(v.get("query", ""))) - defined):
            out.append(f"{where} variable {v['name']!r}: uses ${var}, which is not defined")
    for name, ref in refs:
        if ref.get("uid") not in datasource_uids:
            out.append(f"{name}: data source {ref.get('uid')!r} is not provisioned "
                       f"({', '.join(sorted(datasource_uids))})")
    return out
