"""One-click acknowledgement links: signed, bound to one alert and an expiry; GET only shows
a page; forged, expired and replayed links are refused; a real browser confirms one."""

from __future__ import annotations

import time
from pathlib import Path

import aiohttp
import numpy as np
import pytest
from aiohttp.test_utils import TestServer

from alerts.lifecycle import Book
from alerts.links import LinkError, sign, verify
from alerts.service import AlertService
from alerts.settings import AlertSettings
from core.metrics import Metrics
from pantau.devstack.packages import ensure_packages
from pantau.http_api import SubApp, build_app
from pantau.tokens import TokenFile
from tests.alerts.browser import chromium
from tests.alerts.helpers import S, chain, stored

KEY = b"k" * 32
GAUGE = "wl-putih-gandusari"


def test_sign_and_verify() -> None:
    token = sign(KEY, "0123456789abcdef", 1_000 * S, 1_000, 600)
    assert verify(KEY, token, 1_100).alert_id == "0123456789abcdef"
    assert sign(KEY, "0123456789abcdef", 1_000 * S, 1_010, 600) == token  # re-sent: same link


@pytest.mark.parametrize(("mangle", "reason"), [
    pytest.param(lambda t: t[:-2] + ("AA" if not t.endswith("AA") else "BB"), "forged",
                 id="mac"),
    pytest.param(lambda t: "fedcba9876543210" + t[16:], "forged", id="other-alert"),
    pytest.param(lambda t: t.replace(t.split(".")[1], str(int(t.split(".")[1]) + 9)),
                 "forged", id="later-expiry"),
    pytest.param(lambda t: t + "x", "malformed", id="junk"),
])
def test_tampered_links_are_refused(mangle, reason: str) -> None:  # type: ignore[no-untyped-def]
    token = sign(KEY, "0123456789abcdef", 1_000 * S, 1_000, 600)
    with pytest.raises(LinkError) as e:
        verify(KEY, mangle(token), 1_100)
    assert e.value.reason == reason


def test_expired_link_is_refused() -> None:
    token = sign(KEY, "0123456789abcdef", 1_000 * S, 1_000, 600)
    expires = int(token.split(".")[1])
    with pytest.raises(LinkError, match="expired"):
        verify(KEY, token, expires)
    with pytest.raises(LinkError, match="not signed"):
        verify(b"other key", token, 1_100)


def firing_service(tmp_path: Path) -> tuple[AlertService, str]:
    ch = chain()
    service = AlertService(AlertSettings(public_url="http://pantau.example"), ch.table,
                           state_dir=tmp_path, metrics=Metrics())
    service.open()
    ts = (time.time_ns() - np.arange(30, 0, -1) * 60 * S).tolist()
    service.on_stored(stored(ch, GAUGE, "level_cm", ts, [320.0] * len(ts)))
    aid = next(a.id for a in service.book.alerts.values() if a.labels.get("stage") == "Awas")
    return service, aid


def link_of(service: AlertService, aid: str) -> str:
    a = service.book.alerts[aid]
    return sign(service.key, aid, a.fired_ns, time.time(), service.settings.ack_link_ttl_s)


async def test_get_shows_a_page_only_post_acknowledges_and_replay_is_refused(
        tmp_path: Path) -> None:
    service, aid = firing_service(tmp_path)
    token = link_of(service, aid)
    book: Book = service.book
    tokens = TokenFile(tmp_path / "api-tokens.json")
    tokens.create("grafana", "viewer")  # tokens exist: the API asks for one, the link does not
    app = build_app(Metrics(), [], [SubApp("/api/alerts", service.api(), write_role="operator"),
                                    SubApp("/ack", service.links(), public=True)], tokens=tokens)
    async with TestServer(app) as server, aiohttp.ClientSession() as http:
        async with http.get(server.make_url("/api/alerts")) as r:
            assert r.status == 401
        async with http.get(server.make_url(f"/ack/{token}")) as r:
            assert r.status == 200 and "<form method=\"post\">" in await r.text()
        assert not book.alerts[aid].acked_by  # a mail scanner following the link: nothing
        async with http.post(server.make_url(f"/ack/{token}"), data={"who": "Sari"}) as r:
            assert r.status == 200, await r.text()
        assert book.alerts[aid].acked_by == "Sari"
        book.alerts[aid].acked_by = ""  # even if the alert were open again, the link is spent
        async with http.post(server.make_url(f"/ack/{token}"), data={"who": "Eve"}) as r:
            assert r.status == 409 and "already used" in await r.text()
        forged = token[:-1] + ("Q" if token[-1] != "Q" else "g")
        async with http.post(server.make_url(f"/ack/{forged}"), data={"who": "Eve"}) as r:
            assert r.status == 403
    service.close()


async def test_the_confirm_page_in_a_real_browser(tmp_path: Path) -> None:
    ensure_packages("chromium")
    service, aid = firing_service(tmp_path)
    token = link_of(service, aid)
    async with TestServer(service.links()) as server, chromium(tmp_path / "profile") as page:
        await page.open(str(server.make_url(f"/{token}")))
        assert "Konfirmasi" in await page.eval("document.body.innerText")
        assert not service.book.alerts[aid].acked_by
        await page.eval("document.getElementById('who').value = 'Sari (BPBD)'; "
                        "document.getElementById('confirm').click(); true")
        text = await page.wait("document.body.innerText.includes('acknowledged by') && "
                               "document.body.innerText")
    assert "Sari (BPBD)" in text
    assert service.book.alerts[aid].acked_by == "Sari (BPBD)"
    service.close()
