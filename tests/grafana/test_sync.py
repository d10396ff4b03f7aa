"""``pantau grafana sync`` against `FakeGrafana` (Grafana's documented API shapes, served by
the test's event loop; Grafana itself cannot run here): the first sync creates the folder, the
data sources and every dashboard; a second changes nothing; a device added rewrites exactly
the dashboards that show it; a wrong URL or token is a clear error that names the URL and
never the token."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from core.settings import Secret
from devices.registry import default_registry_path, load_registry
from grafana.dashboards import build_all
from grafana.settings import GrafanaSettings
from grafana.sources import GrafanaError, Sources
from grafana.sync import SyncResult, sync
from ingest.settings import InfluxSettings
from pantau.cli import main
from pantau.devstack import free_port
from pantau.grafana_cli import sources
from pantau.settings import Settings
from tests.grafana.fake_grafana import FakeGrafana
from tests.grafana.test_dashboards import NEW, SRC

TOKEN = "glsa_right-token-0123456789"
WRONG = "glsa_wrong-token-9876543210"
READ = "influx-read-secret-42"
DASHBOARD = ("POST", "/api/dashboards/db")


async def _serve(app: web.Application) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner, f"http://127.0.0.1:{port}"


@pytest.fixture
async def grafana() -> AsyncIterator[tuple[FakeGrafana, str]]:
    fake = FakeGrafana(TOKEN)
    runner, url = await _serve(fake.app())
    yield fake, url
    await runner.cleanup()


def _settings(url: str, token: str = TOKEN, secret: str = READ) -> GrafanaSettings:
    return GrafanaSettings(url=url, token=Secret(token), influx_read_secret=Secret(secret),
                           timeout_s=5.0)


async def _sync(src: Sources, settings: GrafanaSettings, **kw: Any) -> SyncResult:
    return await asyncio.to_thread(sync, src, InfluxSettings(api="v2"), settings, **kw)


async def _fails(call: Callable[[], Any]) -> str:
    with pytest.raises(GrafanaError) as e:
        await asyncio.to_thread(call)
    return str(e.value)


async def test_first_sync_creates_everything_and_a_second_changes_nothing(
        grafana: tuple[FakeGrafana, str]) -> None:
    fake, url = grafana
    first = await _sync(SRC, _settings(url))
    assert first.version == "11.6.0" and {s.action for s in first.steps} == {"create"}
    boards = build_all(SRC)
    assert set(fake.folders) == {"pantau"} and set(fake.dashboards) == set(boards)
    for uid, doc in boards.items():
        stored = fake.dashboards[uid]
        assert stored["folderUid"] == "pantau"
        assert {k: v for k, v in stored["dashboard"].items() if k not in ("id", "version")} \
            == json.loads(json.dumps(doc))
    influx = fake.datasources["pantau-influxdb"]
    assert influx["secureJsonData"] == {"httpHeaderValue1": f"Token {READ}"}
    assert influx["jsonData"]["version"] == "InfluxQL" and len(fake.datasources) == 2
    writes = len(fake.writes)
    assert writes == 1 + 2 + len(boards)

    second = await _sync(SRC, _settings(url))
    assert {s.action for s in second.steps} == {"keep"} and not second.gazetteer_needed
    assert len(fake.writes) == writes  # no new version, no duplicate
    assert all(len(v) == 1 for v in fake.versions.values())


async def test_a_device_added_updates_exactly_the_dashboards_that_show_it(
        grafana: tuple[FakeGrafana, str], tmp_path: Path) -> None:
    fake, url = grafana
    await _sync(SRC, _settings(url))
    grown = tmp_path / "registry.yaml"
    grown.write_text(default_registry_path().read_text().rstrip("\n") + "\n" + NEW)
    bigger = sources(Settings(), load_registry(grown))
    before, after = build_all(SRC), build_all(bigger)
    affected = {uid for uid in before if before[uid] != after[uid]}
    assert affected and affected < set(before)
    fake.writes.clear()

    result = await _sync(bigger, _settings(url))
    assert {s.uid for s in result.changed} == affected and result.gazetteer_needed
    assert fake.writes == [DASHBOARD] * len(affected)
    for uid, saved in fake.versions.items():
        assert len(saved) == (2 if uid in affected else 1), uid
        if uid in affected:
            assert saved[-1]["message"] == "pantau grafana sync"
            assert "wl-brantas-baru" in json.dumps(fake.dashboards[uid]["dashboard"])


async def test_a_dashboard_edited_in_grafana_is_put_back(
        grafana: tuple[FakeGrafana, str]) -> None:
    fake, url = grafana
    await _sync(SRC, _settings(url))
    fake.dashboards["pantau-weather"]["dashboard"]["title"] = "edited by hand"
    fake.writes.clear()
    result = await _sync(SRC, _settings(url))
    assert [(s.uid, s.why) for s in result.changed] == [("pantau-weather", "changed: title")]
    assert fake.writes == [DASHBOARD]


async def test_a_wrong_token_names_the_url_and_not_the_token(
        grafana: tuple[FakeGrafana, str], monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    fake, url = grafana
    message = await _fails(lambda: sync(SRC, InfluxSettings(), _settings(url, WRONG)))
    assert url in message and "401" in message and "PANTAU_GRAFANA_TOKEN" in message
    assert WRONG not in message and fake.writes == []
    # the command line says the same, and prints the token nowhere
    monkeypatch.setenv("PANTAU_GRAFANA_URL", url)
    monkeypatch.setenv("PANTAU_GRAFANA_TOKEN", WRONG)
    status = await asyncio.to_thread(main, ["grafana", "sync"])
    out = capsys.readouterr()
    assert status == 2 and url in out.err and "401" in out.err
    assert WRONG not in out.out + out.err


async def test_a_token_without_the_rights_is_a_clear_error(
        grafana: tuple[FakeGrafana, str]) -> None:
    fake, url = grafana
    fake.role = "Viewer"
    message = await _fails(lambda: sync(SRC, InfluxSettings(), _settings(url)))
    assert "403" in message and "Editor" in message and url in message
    assert TOKEN not in message and fake.writes == []


@pytest.mark.parametrize(("url", "reason"), [
    pytest.param(f"http://127.0.0.1:{free_port()}", "connection refused", id="refused"),
    pytest.param("http://pantau-no-such-host.invalid:3000", "does not resolve", id="dns"),
])
async def test_an_unreachable_grafana_is_a_clear_error(url: str, reason: str) -> None:
    message = await _fails(lambda: sync(SRC, InfluxSettings(), _settings(url)))
    assert message.startswith(f"cannot reach Grafana at {url}") and reason in message
    assert TOKEN not in message


@pytest.mark.parametrize("handler", [
    pytest.param(lambda _: web.Response(status=404, text="404 page not found"), id="404"),
    pytest.param(lambda _: web.Response(text="<html>router login</html>",
                                        content_type="text/html"), id="html"),
    pytest.param(lambda _: web.json_response({"status": "up"}), id="other-json"),
])
async def test_a_server_that_is_not_grafana_is_a_clear_error(
        handler: Callable[[web.Request], web.Response]) -> None:
    async def answer(request: web.Request) -> web.Response:
        return handler(request)
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", answer)
    runner, url = await _serve(app)
    try:
        message = await _fails(lambda: sync(SRC, InfluxSettings(), _settings(url)))
    finally:
        await runner.cleanup()
    assert message.startswith(f"{url} does not answer as Grafana"), message


async def test_data_source_credentials_are_needed_once_and_rotated_on_request(
        grafana: tuple[FakeGrafana, str]) -> None:
    fake, url = grafana
    message = await _fails(lambda: sync(SRC, InfluxSettings(api="v2"),
                                        _settings(url, secret="")))
    assert "PANTAU_GRAFANA_INFLUX_READ_SECRET" in message and fake.writes == []

    await _sync(SRC, _settings(url))
    fake.writes.clear()
    kept = await _sync(SRC, _settings(url, secret=""))  # Grafana holds it: not needed
    assert kept.changed == [] and fake.writes == []
    rotated = await _sync(SRC, _settings(url, secret="new-read-secret"), rotate_secrets=True)
    assert [(s.uid, s.why) for s in rotated.changed] == [("pantau-influxdb",
                                                          "credential rotated")]
    influx = fake.datasources["pantau-influxdb"]
    assert influx["secureJsonData"] == {"httpHeaderValue1": "Token new-read-secret"}
    assert influx["version"] == 2 and fake.datasources["pantau-alertmanager"]["version"] == 1


async def test_dry_run_only_reads(grafana: tuple[FakeGrafana, str]) -> None:
    fake, url = grafana
    result = await _sync(SRC, _settings(url), dry_run=True)
    assert len(result.changed) == len(result.steps) and fake.writes == []
