"""`devices.topics`: the one place the topic layout and status payloads are built and parsed."""

from __future__ import annotations

import pytest

from devices import topics


def test_a_device_topic_round_trips() -> None:
    tele, status = topics.device_topics("pantau", "kanigoro", "wl-1")
    assert (tele, status) == ("pantau/kanigoro/wl-1/telemetry", "pantau/kanigoro/wl-1/status")
    assert topics.parse(tele, "pantau") == topics.Topic("kanigoro", "wl-1", "telemetry")
    assert topics.parse(status, "pantau") == topics.Topic("kanigoro", "wl-1", "status")
    assert topics.is_status(status) and not topics.is_status(tele)
    assert topics.device_of(tele) == "wl-1"


@pytest.mark.parametrize("text", [
    pytest.param("other/kanigoro/wl-1/telemetry", id="prefix"),
    pytest.param("pantau/kanigoro/wl-1", id="short"),
    pytest.param("pantau/kanigoro/wl-1/telemetry/x", id="long"),
    pytest.param("pantau//wl-1/telemetry", id="empty-site"),
    pytest.param("pantau/kanigoro/wl-1/config", id="channel"),
])
def test_a_topic_outside_the_layout_is_none(text: str) -> None:
    assert topics.parse(text, "pantau") is None


def test_subscriptions_and_acl_cover_both_channels() -> None:
    assert topics.subscriptions("p") == ["p/+/+/telemetry", "p/+/+/status"]
    assert topics.subscriptions("p", "g") == ["$share/g/p/+/+/telemetry", "$share/g/p/+/+/status"]
    assert topics.acl_patterns("p") == ["pattern write p/+/%u/telemetry",
                                        "pattern write p/+/%u/status"]


@pytest.mark.parametrize(("payload", "expected"), [
    pytest.param(b"online", "online", id="online"),
    pytest.param(b" Offline\n", "offline", id="case"),
    pytest.param(b'{"state": "online"}', "online", id="json"),
    pytest.param(b"\xff\xfe", None, id="garbage"),
    pytest.param(b"", None, id="empty"),
])
def test_status_payloads(payload: bytes, expected: str | None) -> None:
    assert topics.parse_status(payload) == expected
