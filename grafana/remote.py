"""A running Grafana, spoken to through its HTTP API with `grafana-client`, for
``pantau grafana sync``.

`RemoteGrafana` makes one request per call (no retries: a sync is re-run by hand) and turns
every failure into a `GrafanaError` that names Grafana's URL and what was being done, never
the token: connection refused, a host name that does not resolve, a server that is not
Grafana, a token Grafana refuses (401) or one without the rights (403), Grafana's own
message for anything else. A read of something absent is ``None``, not an error.

Endpoints (Grafana's HTTP API, ``Authorization: Bearer <token>``): ``GET /api/health``;
``GET /api/folders/:uid``, ``POST /api/folders``, ``PUT /api/folders/:uid``;
``GET /api/dashboards/uid/:uid``, ``POST /api/dashboards/db``; ``GET /api/datasources/uid/:uid``,
``POST /api/datasources``, ``PUT /api/datasources/uid/:uid``.
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from typing import Any, Protocol, cast
from urllib.parse import urlsplit

import niquests
from grafana_client.api import GrafanaApi
from grafana_client.client import (
    GrafanaClientError,
    GrafanaException,
    GrafanaTimeoutError,
    GrafanaUnauthorizedError,
)

from grafana.settings import GrafanaSettings
from grafana.sources import GrafanaError

TOKEN_HELP = ("grafana.token (PANTAU_GRAFANA_TOKEN or PANTAU_GRAFANA_TOKEN_FILE) must be a "
              "token of a service account of this Grafana with role Editor or Admin")


class _Client(Protocol):
    def GET(self, path: str) -> Any: ...  # grafana-client's name for a GET


class _Folders(Protocol):
    def get_folder(self, uid: str) -> Any: ...
    def create_folder(self, title: str, uid: str | None = None) -> Any: ...
    def update_folder(self, uid: str, title: str | None = None, *,
                      overwrite: bool = False) -> Any: ...


class _Dashboards(Protocol):
    def get_dashboard(self, dashboard_uid: str) -> Any: ...
    def update_dashboard(self, dashboard: dict[str, Any]) -> Any: ...


class _Datasources(Protocol):
    def get_datasource_by_uid(self, datasource_uid: str) -> Any: ...
    def create_datasource(self, datasource: dict[str, Any]) -> Any: ...
    def update_datasource_by_uid(self, datasource_uid: str,
                                 datasource: dict[str, Any]) -> Any: ...


class _Api(Protocol):
    """The part of grafana-client's (untyped) `GrafanaApi` Pantau calls, typed."""

    client: _Client
    folder: _Folders
    dashboard: _Dashboards
    datasource: _Datasources


def display_url(url: str) -> str:
    """``url`` without user, password, query or fragment: safe to print."""
    u = urlsplit(url)
    host = u.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    port = f":{u.port}" if u.port else ""
    return f"{u.scheme}://{host}{port}{u.path.rstrip('/')}"


def _unreachable_reason(e: BaseException) -> str:
    """Why a connection failed, from the chain of causes niquests wraps."""
    seen: BaseException | None = e
    while seen is not None:
        if isinstance(seen, ConnectionRefusedError):
            return "connection refused (is Grafana running there, on that port?)"
        if isinstance(seen, socket.gaierror) or type(seen).__name__ == "NameResolutionError":
            return "the host name does not resolve"
        if isinstance(seen, ssl.SSLError):
            return f"TLS failed ({seen.reason or seen})"
        if isinstance(seen, TimeoutError):
            return "no answer (timeout)"
        seen = seen.__cause__ or seen.__context__
    return type(e).__name__


class RemoteGrafana:
    """One Grafana and its token. Constructing it does no I/O; each method is one request."""

    def __init__(self, settings: GrafanaSettings) -> None:
        self._token = settings.token.reveal()
        if not self._token:
            raise GrafanaError(f"no token for Grafana at {display_url(settings.url)}: "
                               f"{TOKEN_HELP}")
        u = urlsplit(settings.url)
        prefix = u.path.strip("/")
        self.url = display_url(settings.url)
        self._timeout = settings.timeout_s
        self._api = cast(_Api, GrafanaApi(
            auth=self._token, host=u.hostname, port=u.port, protocol=u.scheme,
            url_path_prefix=prefix + "/" if prefix else "", timeout=settings.timeout_s))

    def _safe(self, text: object) -> str:
        return str(text).replace(self._token, "***")

    @contextmanager
    def _calling(self, what: str) -> Iterator[None]:
        """Turn whatever ``what`` raises into a `GrafanaError` naming the URL."""
        where = f"Grafana at {self.url}"
        try:
            yield
        except GrafanaUnauthorizedError:
            raise GrafanaError(f"{where} refused the token (401 Unauthorized) when it was "
                               f"asked to {what}: {TOKEN_HELP}") from None
        except GrafanaTimeoutError:
            raise GrafanaError(f"{where} did not answer within {self._timeout:g} s "
                               f"(grafana.timeout_s) when asked to {what}") from None
        except GrafanaClientError as e:
            message = self._safe(_message(e.response))
            if e.status_code == 403:
                raise GrafanaError(f"{where} does not let this token {what} (403: "
                                   f"{message}): {TOKEN_HELP}") from None
            raise GrafanaError(f"{where} refused to {what}: {e.status_code} "
                               f"{message}") from None
        except GrafanaException as e:
            raise GrafanaError(f"{where} failed to {what}: "
                               f"{self._safe(e.message)}") from None
        except niquests.exceptions.ConnectionError as e:
            raise GrafanaError(f"cannot reach Grafana at {self.url} (grafana.url): "
                               f"{_unreachable_reason(e)}") from None
        except ValueError:  # a body that is not JSON: not Grafana's API
            raise GrafanaError(f"{self.url} does not answer as Grafana's HTTP API when asked "
                               f"to {what} (the answer is not JSON): is grafana.url Grafana's "
                               "base URL?") from None

    def _get(self, what: str, call: Callable[[], Any]) -> dict[str, Any] | None:
        """A read: the object, or None when Grafana answers 404."""
        with self._calling(what):
            try:
                found = call()
            except GrafanaClientError as e:
                if e.status_code == 404:
                    return None
                raise
        if not isinstance(found, dict):
            raise GrafanaError(f"{self.url} does not answer as Grafana's HTTP API when asked "
                               f"to {what}: {self._safe(found)[:200]!r}")
        return cast(dict[str, Any], found)

    def _write(self, what: str, call: Callable[[], Any]) -> dict[str, Any]:
        with self._calling(what):
            answer = call()
        return answer if isinstance(answer, dict) else {}

    def health(self) -> str:
        """Grafana's version; `GrafanaError` when the URL is not a healthy Grafana."""
        found: object = None
        # Any 4xx, 401 too (Grafana serves its health to anyone), means: not Grafana.
        with self._calling("report its health (GET /api/health)"), \
                suppress(GrafanaClientError):
            found = self._api.client.GET("/health")
        if not isinstance(found, dict) or "database" not in found:
            raise GrafanaError(f"{self.url} does not answer as Grafana (GET /api/health "
                               "gave no Grafana health report): is grafana.url Grafana's "
                               "base URL, with its sub-path if it is served under one?")
        if found["database"] != "ok":
            raise GrafanaError(f"Grafana at {self.url} is unhealthy: database "
                               f"{self._safe(found['database'])}")
        return str(found.get("version", "?"))

    def folder(self, uid: str) -> dict[str, Any] | None:
        return self._get(f"read folder {uid!r}", lambda: self._api.folder.get_folder(uid))

    def create_folder(self, uid: str, title: str) -> dict[str, Any]:
        return self._write(f"create folder {uid!r}",
                           lambda: self._api.folder.create_folder(title, uid=uid))

    def update_folder(self, uid: str, title: str) -> dict[str, Any]:
        return self._write(f"update folder {uid!r}", lambda: self._api.folder.update_folder(
            uid, title=title, overwrite=True))

    def dashboard(self, uid: str) -> dict[str, Any] | None:
        return self._get(f"read dashboard {uid!r}",
                         lambda: self._api.dashboard.get_dashboard(uid))

    def save_dashboard(self, doc: dict[str, Any], folder_uid: str, message: str
                       ) -> dict[str, Any]:
        body = {"dashboard": {**doc, "id": None}, "folderUid": folder_uid, "overwrite": True,
                "message": message}
        return self._write(f"save dashboard {doc['uid']!r}",
                           lambda: self._api.dashboard.update_dashboard(body))

    def datasource(self, uid: str) -> dict[str, Any] | None:
        return self._get(f"read data source {uid!r}",
                         lambda: self._api.datasource.get_datasource_by_uid(uid))

    def create_datasource(self, ds: dict[str, Any]) -> dict[str, Any]:
        return self._write(f"create data source {ds['uid']!r}",
                           lambda: self._api.datasource.create_datasource(ds))

    def update_datasource(self, ds: dict[str, Any]) -> dict[str, Any]:
        return self._write(f"update data source {ds['uid']!r}",
                           lambda: self._api.datasource.update_datasource_by_uid(ds["uid"], ds))


def _message(response: object) -> str:
    if isinstance(response, dict) and "message" in response:
        return str(response["message"])
    return str(response)[:200]
