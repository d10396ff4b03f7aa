"""A stand-in for the few endpoints of Grafana's HTTP API that ``pantau grafana sync`` calls,
with the request and response shapes of Grafana's documentation (folder, dashboard, data
source and health APIs, Grafana 11), keeping what it receives so tests can assert on it.

Behaviour modelled on Grafana's: ``/api/health`` needs no token, everything else a
``Authorization: Bearer <token>`` (401 ``invalid API key`` otherwise; 403 for writes when the
token's role is Viewer); a dashboard saved with ``overwrite`` gets the next version, and every
save is kept in ``versions``; a data source never returns its secrets (``secureJsonFields``
says which are set) and an update keeps the secrets it is not sent; a name or uid taken by
another object is 409. Not modelled: nested folders, permissions beyond the role, search.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

NOT_FOUND = {"folder": "folder not found", "dashboard": "Dashboard not found",
             "datasource": "Data source not found"}


def _slug(title: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")


def _json(body: Any, status: int = 200) -> web.Response:
    return web.json_response(body, status=status)


@dataclass
class FakeGrafana:
    token: str
    role: str = "Admin"
    version: str = "11.6.0"
    folders: dict[str, dict[str, Any]] = field(default_factory=dict)
    # uid -> {"dashboard": <as Grafana returns it>, "folderUid": ...}
    dashboards: dict[str, dict[str, Any]] = field(default_factory=dict)
    versions: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    datasources: dict[str, dict[str, Any]] = field(default_factory=dict)  # with secureJsonData
    writes: list[tuple[str, str]] = field(default_factory=list)           # (method, path)
    seen_headers: list[dict[str, str]] = field(default_factory=list)
    _ids: int = 0

    def _id(self) -> int:
        self._ids += 1
        return self._ids

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._auth])
        r = app.router
        r.add_get("/api/health", self.health)
        r.add_get("/api/folders", self.list_folders)
        r.add_get("/api/folders/{uid}", self.get_folder)
        r.add_post("/api/folders", self.create_folder)
        r.add_put("/api/folders/{uid}", self.update_folder)
        r.add_post("/api/dashboards/db", self.save_dashboard)
        r.add_get("/api/dashboards/uid/{uid}", self.get_dashboard)
        r.add_get("/api/datasources/uid/{uid}", self.get_datasource)
        r.add_post("/api/datasources", self.create_datasource)
        r.add_put("/api/datasources/uid/{uid}", self.update_datasource)
        return app

    @web.middleware
    async def _auth(self, request: web.Request, handler: Any) -> web.StreamResponse:
        self.seen_headers.append(dict(request.headers))
        if request.path != "/api/health":
            if request.headers.get("Authorization") != f"Bearer {self.token}":
                return _json({"message": "invalid API key", "traceID": ""}, 401)
            if request.method != "GET" and self.role == "Viewer":
                return _json({"accessErrorId": "ACE0000000001", "title": "Access denied",
                              "message": "You'll need additional permissions to perform this "
                              "action. Permissions needed: any of dashboards:write"}, 403)
        if request.method != "GET":
            self.writes.append((request.method, request.path))
        return await handler(request)

    async def health(self, _: web.Request) -> web.Response:
        return _json({"commit": "0f2b0b6", "database": "ok", "version": self.version})

    # folders -----------------------------------------------------------------------------
    async def list_folders(self, _: web.Request) -> web.Response:
        return _json([{"id": f["id"], "uid": f["uid"], "title": f["title"]}
                      for f in self.folders.values()])

    async def get_folder(self, request: web.Request) -> web.Response:
        f = self.folders.get(request.match_info["uid"])
        return _json(f) if f else _json({"message": NOT_FOUND["folder"]}, 404)

    async def create_folder(self, request: web.Request) -> web.Response:
        body = await request.json()
        uid, title = body.get("uid") or f"f{self._ids + 1}", body.get("title", "")
        if not title:
            return _json({"message": "folder title cannot be empty"}, 400)
        if uid in self.folders or any(f["title"] == title for f in self.folders.values()):
            return _json({"message": "a folder with the same name or uid already exists"}, 409)
        self.folders[uid] = {"id": self._id(), "uid": uid, "title": title,
                             "url": f"/dashboards/f/{uid}/{_slug(title)}", "hasAcl": False,
                             "canSave": True, "canEdit": True, "canAdmin": True,
                             "version": 1}
        return _json(self.folders[uid])

    async def update_folder(self, request: web.Request) -> web.Response:
        f = self.folders.get(request.match_info["uid"])
        if f is None:
            return _json({"message": NOT_FOUND["folder"]}, 404)
        body = await request.json()
        if not body.get("overwrite") and body.get("version") != f["version"]:
            return _json({"message": "the folder has been changed by someone else",
                          "status": "version-mismatch"}, 412)
        f.update(title=body.get("title", f["title"]), version=f["version"] + 1)
        return _json(f)

    # dashboards --------------------------------------------------------------------------
    async def save_dashboard(self, request: web.Request) -> web.Response:
        body = await request.json()
        doc = copy.deepcopy(body.get("dashboard") or {})
        if not doc.get("title"):
            return _json({"message": "Dashboard title cannot be empty"}, 400)
        folder = body.get("folderUid") or ""
        if folder and folder not in self.folders:
            return _json({"message": "folder not found"}, 400)
        uid = doc.get("uid") or f"d{self._ids + 1}"
        old = self.dashboards.get(uid)
        if old and not body.get("overwrite") and doc.get("version") != old["dashboard"]["version"]:
            return _json({"message": "The dashboard has been changed by someone else",
                          "status": "version-mismatch"}, 412)
        version = old["dashboard"]["version"] + 1 if old else 1
        doc.update(id=old["dashboard"]["id"] if old else self._id(), uid=uid, version=version)
        self.dashboards[uid] = {"dashboard": doc, "folderUid": folder}
        self.versions.setdefault(uid, []).append({"version": version,
                                                  "message": body.get("message", "")})
        slug = _slug(doc["title"])
        return _json({"id": doc["id"], "uid": uid, "url": f"/d/{uid}/{slug}",
                      "status": "success", "version": version, "slug": slug})

    async def get_dashboard(self, request: web.Request) -> web.Response:
        d = self.dashboards.get(request.match_info["uid"])
        if d is None:
            return _json({"message": NOT_FOUND["dashboard"]}, 404)
        doc, folder = d["dashboard"], d["folderUid"]
        slug = _slug(doc["title"])
        meta = {"type": "db", "canSave": True, "canEdit": True, "slug": slug,
                "url": f"/d/{doc['uid']}/{slug}", "version": doc["version"],
                "folderUid": folder, "provisioned": False,
                "folderTitle": self.folders[folder]["title"] if folder else "General"}
        return _json({"dashboard": doc, "meta": meta})

    # data sources ------------------------------------------------------------------------
    def _public(self, ds: dict[str, Any]) -> dict[str, Any]:
        out = {k: v for k, v in ds.items() if k != "secureJsonData"}
        out["secureJsonFields"] = {k: True for k in ds.get("secureJsonData", {})}
        return out

    async def get_datasource(self, request: web.Request) -> web.Response:
        ds = self.datasources.get(request.match_info["uid"])
        return _json(self._public(ds)) if ds else _json({"message": NOT_FOUND["datasource"]},
                                                        404)

    def _taken(self, body: dict[str, Any], uid: str) -> bool:
        return any(d["name"] == body.get("name") and u != uid
                   for u, d in self.datasources.items())

    async def create_datasource(self, request: web.Request) -> web.Response:
        body = await request.json()
        uid = body.get("uid") or f"ds{self._ids + 1}"
        if uid in self.datasources or self._taken(body, uid):
            return _json({"message": "data source with the same name or uid already exists"},
                         409)
        ds = {"id": self._id(), "uid": uid, "orgId": 1, "name": body["name"],
              "type": body["type"], "typeLogoUrl": "", "access": body.get("access", "proxy"),
              "url": body.get("url", ""), "user": body.get("user", ""), "database": "",
              "basicAuth": False, "basicAuthUser": "", "withCredentials": False,
              "isDefault": bool(body.get("isDefault")), "jsonData": body.get("jsonData", {}),
              "secureJsonData": body.get("secureJsonData", {}), "version": 1,
              "readOnly": False}
        self.datasources[uid] = ds
        return _json({"datasource": self._public(ds), "id": ds["id"],
                      "message": "Datasource added", "name": ds["name"]})

    async def update_datasource(self, request: web.Request) -> web.Response:
        uid = request.match_info["uid"]
        ds = self.datasources.get(uid)
        if ds is None:
            return _json({"message": NOT_FOUND["datasource"]}, 404)
        if ds["readOnly"]:
            return _json({"message": "Cannot update read-only data source"}, 403)
        body = await request.json()
        if self._taken(body, uid):
            return _json({"message": "data source with the same name already exists"}, 409)
        # The fields are replaced (absent ones reset); secrets not sent are kept.
        secure = {**ds["secureJsonData"], **body.get("secureJsonData", {})}
        ds.update(name=body["name"], type=body["type"], access=body.get("access", "proxy"),
                  url=body.get("url", ""), user=body.get("user", ""),
                  isDefault=bool(body.get("isDefault")), jsonData=body.get("jsonData", {}),
                  secureJsonData=secure, version=ds["version"] + 1)
        return _json({"datasource": self._public(ds), "id": ds["id"],
                      "message": "Datasource updated", "name": ds["name"]})
