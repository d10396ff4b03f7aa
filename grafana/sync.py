"""``pantau grafana sync``: what `grafana.export` writes as provisioning files, upserted into a
running Grafana through its HTTP API (`grafana.remote`): the folder, the data sources and the
dashboards, each by its uid.

Idempotent: every object is read first and written only when it differs from what Pantau
generates, so a second sync writes nothing (no new dashboard version, no duplicate) and a
device added to the registry rewrites exactly the dashboards that show it. What "differs"
means, per object:

- folder: its title;
- data source: every field Pantau sets (``jsonData`` key by key; fields Grafana adds are
  left alone), and a credential Grafana does not hold. Grafana never returns a stored
  password or token, so a changed one is sent only with ``rotate_secrets`` (creating a data
  source, or one missing its credential, needs ``grafana.influx_read_secret``);
- dashboard: its JSON without the ``id`` and ``version`` Grafana assigns, and its folder.

`plan` only reads; `apply` writes the planned changes in dependency order (folder, data
sources, dashboards). Dashboards no longer generated are not deleted. The map's gazetteer is
a file Grafana serves (``public/gazetteer``), which the HTTP API cannot upload: it comes from
``pantau grafana export``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from grafana.board import FOLDER_TITLE, FOLDER_UID
from grafana.dashboards import build_all
from grafana.dashboards.command_center import GAZETTEER
from grafana.export import datasources
from grafana.remote import RemoteGrafana
from grafana.settings import GrafanaSettings
from grafana.sources import GrafanaError, Sources
from ingest.settings import InfluxSettings

MESSAGE = "pantau grafana sync"  # the version message Grafana shows in a dashboard's history
ASSIGNED = ("id", "version")     # what Grafana sets in a saved dashboard


@dataclass(frozen=True, slots=True)
class Step:
    """One object: ``kind`` folder | data source | dashboard; ``action`` create | update |
    keep; ``why`` says what differs; ``body`` is what would be sent."""

    kind: str
    uid: str
    action: str
    body: dict[str, Any]
    why: str = ""

    def __str__(self) -> str:
        verb = {"create": "create", "update": "update", "keep": "unchanged"}[self.action]
        return f"{verb} {self.kind} {self.uid}" + (f" ({self.why})" if self.why else "")


@dataclass(frozen=True, slots=True)
class Desired:
    """Everything Pantau wants in Grafana; ``secure`` is the credential keys each data
    source needs (set whether or not the secret itself is known)."""

    datasources: tuple[dict[str, Any], ...]
    secure: dict[str, tuple[str, ...]]
    dashboards: dict[str, dict[str, Any]]


def desired(src: Sources, influx: InfluxSettings, grafana: GrafanaSettings) -> Desired:
    secret = grafana.influx_read_secret.reveal()
    out, secure = [], {}
    for ds in datasources(influx, grafana, secret=secret):
        ds = {k: v for k, v in ds.items() if k != "editable"}  # a provisioning-file key
        secure[ds["uid"]] = tuple(ds.get("secureJsonData", {}))
        if not secret:
            ds.pop("secureJsonData", None)
        out.append(ds)
    # Through JSON, so the comparison sees what Grafana would store and return.
    boards = {uid: json.loads(json.dumps(doc)) for uid, doc in build_all(src).items()}
    return Desired(tuple(out), secure, boards)


def _folder_step(remote: RemoteGrafana) -> Step:
    body = {"uid": FOLDER_UID, "title": FOLDER_TITLE}
    have = remote.folder(FOLDER_UID)
    if have is None:
        return Step("folder", FOLDER_UID, "create", body)
    if have.get("title") != FOLDER_TITLE:
        return Step("folder", FOLDER_UID, "update", body, f"title {have.get('title')!r}")
    return Step("folder", FOLDER_UID, "keep", body)


def _datasource_step(remote: RemoteGrafana, want: dict[str, Any], secure: Sequence[str],
                     rotate_secrets: bool) -> Step:
    uid, has_secret = want["uid"], "secureJsonData" in want
    have = remote.datasource(uid)
    held = set() if have is None else {
        k for k, v in (have.get("secureJsonFields") or {}).items() if v}
    missing = [k for k in secure if k not in held]
    if missing and not has_secret:
        raise GrafanaError(
            f"data source {uid!r} in Grafana at {remote.url} needs its InfluxDB credential "
            f"({', '.join(missing)}), and grafana.influx_read_secret is empty: set "
            "PANTAU_GRAFANA_INFLUX_READ_SECRET or PANTAU_GRAFANA_INFLUX_READ_SECRET_FILE to "
            "the read-only password (InfluxDB 1.x) or token (2.x)")
    if have is None:
        return Step("data source", uid, "create", want)
    why = [k for k, v in want.items()
           if k not in ("jsonData", "secureJsonData") and have.get(k) != v]
    have_json = have.get("jsonData") or {}
    why += [f"jsonData.{k}" for k, v in want.get("jsonData", {}).items()
            if have_json.get(k) != v]
    if missing:
        why.append("credential not set")
    elif rotate_secrets and has_secret and secure:
        why.append("credential rotated")
    if why:
        return Step("data source", uid, "update", want, ", ".join(why))
    return Step("data source", uid, "keep", want)


def _dashboard_step(remote: RemoteGrafana, uid: str, doc: dict[str, Any]) -> Step:
    have = remote.dashboard(uid)
    if have is None:
        return Step("dashboard", uid, "create", doc)
    stored = {k: v for k, v in (have.get("dashboard") or {}).items() if k not in ASSIGNED}
    mine = {k: v for k, v in doc.items() if k not in ASSIGNED}
    folder = (have.get("meta") or {}).get("folderUid")
    if folder != FOLDER_UID:
        return Step("dashboard", uid, "update", doc, f"in folder {folder!r}")
    if stored != mine:
        keys = sorted(k for k in stored.keys() | mine.keys() if stored.get(k) != mine.get(k))
        return Step("dashboard", uid, "update", doc, "changed: " + ", ".join(keys))
    return Step("dashboard", uid, "keep", doc)


def plan(remote: RemoteGrafana, want: Desired, *, rotate_secrets: bool = False
         ) -> list[Step]:
    """What `apply` would do, in its order; only reads. `GrafanaError` when a data source
    would lack its credential."""
    steps = [_folder_step(remote)]
    steps += [_datasource_step(remote, ds, want.secure[ds["uid"]], rotate_secrets)
              for ds in want.datasources]
    steps += [_dashboard_step(remote, uid, doc) for uid, doc in want.dashboards.items()]
    return steps


def apply(remote: RemoteGrafana, steps: Sequence[Step]) -> None:
    """Write every step that is not ``keep``, in order; stops at the first failure (what was
    written stays written: a re-run continues where this one stopped)."""
    for s in steps:
        if s.action == "keep":
            continue
        if s.kind == "folder":
            if s.action == "create":
                remote.create_folder(s.uid, s.body["title"])
            else:
                remote.update_folder(s.uid, s.body["title"])
        elif s.kind == "data source":
            if s.action == "create":
                remote.create_datasource(s.body)
            else:
                remote.update_datasource(s.body)
        else:
            remote.save_dashboard(s.body, FOLDER_UID, MESSAGE)


@dataclass(frozen=True, slots=True)
class SyncResult:
    url: str
    version: str
    steps: tuple[Step, ...]

    @property
    def changed(self) -> list[Step]:
        return [s for s in self.steps if s.action != "keep"]

    @property
    def gazetteer_needed(self) -> bool:
        """A dashboard with the map changed: Grafana needs the export's gazetteer file."""
        return any(s.kind == "dashboard" and GAZETTEER in json.dumps(s.body)
                   for s in self.changed)


def sync(src: Sources, influx: InfluxSettings, grafana: GrafanaSettings, *,
         dry_run: bool = False, rotate_secrets: bool = False) -> SyncResult:
    """Check that ``grafana.url`` is a healthy Grafana, plan, and (unless ``dry_run``) apply."""
    remote = RemoteGrafana(grafana)
    want = desired(src, influx, grafana)
    version = remote.health()
    steps = plan(remote, want, rotate_secrets=rotate_secrets)
    if not dry_run:
        apply(remote, steps)
    return SyncResult(remote.url, version, tuple(steps))
