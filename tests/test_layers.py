"""The floors of DESIGN.md ("Layers: every import points down"), kept by walking every import.

Every ``import`` and ``from ... import`` in every module counts: at module level, inside
functions and under ``if TYPE_CHECKING:`` alike, relative imports resolved. An import of a
package on a higher floor, or between ``alerts`` and ``grafana``, fails the test with the file
and line that makes it.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: Floor of each top-level package: a module may import its own package and lower floors.
FLOORS = {"core": 0, "devices": 1, "processors": 2, "ingest": 3, "alerts": 4, "grafana": 4,
          "pantau": 5}
#: Packages on one floor that must not import each other.
SIDEWAYS = {frozenset({"alerts", "grafana"})}


def imported_modules(source: str, module: str) -> Iterator[tuple[int, str]]:
    """(line, absolute module name) of every import in ``source`` (the text of ``module``)."""
    package = module.split(".")
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level]
                yield node.lineno, ".".join([*base, *(node.module or "").split(".")]).strip(".")
            elif node.module:
                yield node.lineno, node.module


def violations(source: str, module: str, where: str) -> list[str]:
    """The imports of ``module`` (its text ``source``) that point up or sideways."""
    own = module.split(".")[0]
    found = []
    for line, name in imported_modules(source, module):
        target = name.split(".")[0]
        if target not in FLOORS or target == own:
            continue
        if FLOORS[target] > FLOORS[own]:
            found.append(f"{where}:{line}: {own} (floor {FLOORS[own]}) imports {name} "
                         f"(floor {FLOORS[target]}): imports must point down")
        elif frozenset({own, target}) in SIDEWAYS:
            found.append(f"{where}:{line}: {own} imports {name}: {own} and {target} must not "
                         "import each other")
    return found


def modules() -> Iterator[tuple[Path, str]]:
    for package in FLOORS:
        for path in sorted((ROOT / package).rglob("*.py")):
            rel = path.relative_to(ROOT).with_suffix("")
            parts = list(rel.parts)
            if parts[-1] == "__init__":
                parts.pop()
            yield path, ".".join(parts)


def test_every_package_has_a_floor() -> None:
    tops = {p.parent.name for p in ROOT.glob("*/__init__.py")} - {"tests"}
    assert tops == set(FLOORS), f"packages without a floor: {sorted(tops - set(FLOORS))}"


def test_every_import_points_down() -> None:
    found = [v for path, module in modules()
             for v in violations(path.read_text(), module, str(path.relative_to(ROOT)))]
    assert not found, "\n".join(found)


@pytest.mark.parametrize(("module", "source", "expected"), [
    pytest.param("devices.registry", "from ingest.errors import SinkError\n",
                 "devices/x.py:1: devices (floor 1) imports ingest.errors (floor 3)", id="up"),
    pytest.param("processors.flood", "def f():\n    import pantau.settings\n",
                 "processors/x.py:2: processors (floor 2) imports pantau.settings",
                 id="in-function"),
    pytest.param("core.batch", "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                 "    from devices.series import SeriesTable\n",
                 "core/x.py:3: core (floor 0) imports devices.series", id="type-checking"),
    pytest.param("alerts.rules", "from grafana import schema\n",
                 "alerts/x.py:1: alerts imports grafana", id="sideways"),
    pytest.param("devices.simulator.world", "from ...ingest import decode\n",
                 "devices/x.py:1: devices (floor 1) imports ingest", id="relative"),
])
def test_a_planted_import_is_named(module: str, source: str, expected: str) -> None:
    where = module.split(".")[0] + "/x.py"
    found = violations(source, module, where)
    assert len(found) == 1 and found[0].startswith(expected), found


@pytest.mark.parametrize(("module", "source"), [
    pytest.param("ingest.decode", "from devices.series import SeriesTable\nimport numpy\n",
                 id="down"),
    pytest.param("alerts.rules", "from alerts.lifecycle import Alert\nfrom core import batch\n",
                 id="own-and-kernel"),
])
def test_a_downward_import_passes(module: str, source: str) -> None:
    assert violations(source, module, "x.py") == []
