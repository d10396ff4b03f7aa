"""Real receivers for Alertmanager's notifications, served by the test's event loop: an
aiohttp webhook receiver (``/hook/<name>``) that is also a Telegram Bot API stand-in
(``/bot<token>/sendMessage``, answering ``{"ok": true, "result": <Message>}`` as Telegram
does), and an SMTP server (aiosmtpd) keeping every mail."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import itertools
import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from typing import Any

from aiohttp import web

from pantau.devstack import free_port


@dataclass
class Received:
    """Webhook payloads by receiver name, Telegram messages, mails (in arrival order)."""

    hooks: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    telegram: list[dict[str, Any]] = field(default_factory=list)
    mails: list[Message] = field(default_factory=list)

    def by(self, name: str) -> list[dict[str, Any]]:
        return [p for n, p in self.hooks if n == name]


class Receivers:
    def __init__(self) -> None:
        self.got = Received()
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._ids = itertools.count(1)

    async def _hook(self, request: web.Request) -> web.Response:
        self.got.hooks.append((request.match_info["name"], await request.json()))
        return web.json_response({})

    async def _telegram(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.got.telegram.append(body | {"token": request.match_info["token"]})
        return web.json_response({"ok": True, "result": {
            "message_id": next(self._ids), "date": int(time.time()), "text": body.get("text"),
            "chat": {"id": int(body.get("chat_id", 0)), "type": "private"}}})

    @contextlib.asynccontextmanager
    async def serve(self) -> AsyncIterator[Receivers]:
        app = web.Application()
        app.router.add_post("/hook/{name}", self._hook)
        app.router.add_post("/bot{token}/sendMessage", self._telegram)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", self.port).start()
        try:
            yield self
        finally:
            await runner.cleanup()

    @contextlib.asynccontextmanager
    async def smtp(self) -> AsyncIterator[int]:
        """An SMTP server on a free port (yields it); every mail lands in ``got.mails``."""
        from aiosmtpd.controller import Controller

        got = self.got

        class Handler:
            async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
                got.mails.append(message_from_bytes(envelope.original_content))
                return "250 OK"

        port = free_port()
        controller = Controller(Handler(), hostname="127.0.0.1", port=port)
        controller.start()
        try:
            yield port
        finally:
            controller.stop()


async def until(predicate: Callable[[], Any], within: float = 20.0, what: str = "",
                explain: Callable[[], str] | None = None) -> Any:
    """Poll ``predicate`` (a function, or a coroutine function) until it returns something
    truthy (returned) or time runs out; the failure says ``what`` and, given ``explain``, what
    it returns (the state that did not match)."""
    deadline = time.monotonic() + within
    while True:
        value = predicate()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            more = f"\n{explain()}" if explain is not None else ""
            raise AssertionError(f"timed out waiting for {what or predicate}{more}")
        await asyncio.sleep(0.1)


def alerts_of(payloads: list[dict[str, Any]]) -> list[tuple[str, dict[str, str]]]:
    """(status, labels) of every alert in webhook payloads."""
    return [(a["status"], a["labels"]) for p in payloads for a in p["alerts"]]


def dump(payloads: list[dict[str, Any]]) -> str:
    return json.dumps([{"status": p["status"], "group": p["groupLabels"],
                        "alerts": [(a["status"], a["labels"].get("device")) for a in p["alerts"]]}
                       for p in payloads], indent=1)


def notices(payloads: list[dict[str, Any]]) -> set[tuple[str, str, str]]:
    """(alertname, device, status) of every alert in these notifications."""
    return {(a["labels"]["alertname"], a["labels"]["device"], a["status"])
            for p in payloads for a in p["alerts"]}
