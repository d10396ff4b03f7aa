"""Debian's Prometheus Alertmanager (0.25) as a child process, on a free loopback port.

Started with ``--cluster.listen-address=`` (empty: no gossip, otherwise it starts in cluster
mode on 0.0.0.0:9094 and replicas on one machine would find each other), its own storage
directory (silences and the notification log survive a restart) and the configuration given
as text (``config``, rewritten on every `start`). The Debian package has no web UI: use the
API v2 (`alerts`, `silences`, `status`). It reads its default notification templates
(``default.tmpl``: ``telegram.default.message``, ``email.default.html``, ...) from
``/usr/share/prometheus/alertmanager``, the package's files.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TextIO

from pantau.devstack._http import request
from pantau.devstack._process import Daemon, DevstackError, free_port, writable_dir
from pantau.devstack.packages import binary

#: A configuration that accepts alerts and delivers them nowhere (a receiver without
#: integrations): enough to test what Alertmanager accepts.
MINIMAL_CONFIG = """\
route:
  receiver: nobody
  group_by: [alertname]
receivers:
  - name: nobody
"""


class Alertmanager(Daemon):
    """Alertmanager on ``127.0.0.1:port`` in ``workdir`` with the YAML ``config``."""

    name = "alertmanager"

    def __init__(self, workdir: str | Path, *, config: str = MINIMAL_CONFIG,
                 files: Mapping[str, str] | None = None, port: int | None = None) -> None:
        super().__init__(workdir)
        self.config = config
        self.files = dict(files or {})  # e.g. templates, named relative to the config file
        self.port = port or free_port()
        self.conf_path = self.workdir / "alertmanager.yml"
        self.data_dir = self.workdir / "data"

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``."""
        return f"http://{self.host}:{self.port}"

    def _prepare(self) -> list[str]:
        writable_dir(self.data_dir)
        for name, text in self.files.items():
            (self.workdir / name).write_text(text, encoding="utf-8")
        self.conf_path.write_text(self.config, encoding="utf-8")
        return [binary("prometheus-alertmanager"), f"--config.file={self.conf_path}",
                f"--storage.path={self.data_dir}",
                f"--web.listen-address={self.host}:{self.port}",
                f"--web.external-url={self.url}", "--cluster.listen-address=",
                "--log.level=info"]

    def _ready(self) -> bool:
        try:
            return request("GET", f"{self.url}/-/ready", timeout=1.0).status == 200
        except OSError:
            return False

    def reload(self, config: str | None = None) -> None:
        """Apply a new configuration (``POST /-/reload``); `DevstackError` if refused."""
        if config is not None:
            self.config = config
            self.conf_path.write_text(config, encoding="utf-8")
        resp = request("POST", f"{self.url}/-/reload")
        if resp.status != 200:
            raise DevstackError(f"alertmanager refused its configuration: {resp.text.strip()}")

    def _get(self, path: str) -> Any:
        resp = request("GET", f"{self.url}{path}")
        if resp.status != 200:
            raise DevstackError(f"GET {self.url}{path}: HTTP {resp.status}: {resp.text.strip()}")
        return json.loads(resp.body)

    def alerts(self) -> list[dict[str, Any]]:
        """``GET /api/v2/alerts``: the alerts it holds (active, silenced and inhibited)."""
        out: list[dict[str, Any]] = self._get("/api/v2/alerts")
        return out

    def silences(self) -> list[dict[str, Any]]:
        """``GET /api/v2/silences``."""
        out: list[dict[str, Any]] = self._get("/api/v2/silences")
        return out


def _summary(receiver: str, payload: dict[str, Any]) -> str:
    """One notification as a person would glance at it."""
    lines = [f"[{receiver}] {payload.get('status', '?').upper()} "
             + " ".join(f"{k}={v}" for k, v in payload.get("groupLabels", {}).items())]
    for a in payload.get("alerts", []):
        notes = a.get("annotations", {})
        lines.append(f"  - {a.get('status')}: {notes.get('summary', a.get('labels'))}")
        if notes.get("ack_url") and a.get("status") == "firing":
            lines.append(f"    acknowledge: {notes['ack_url']}")
    return "\n".join(lines)


async def _demo(workdir: Path, template: str, log: TextIO) -> None:
    """Alertmanager with the configuration generated from the shipped rules, and a receiver
    that prints every notification (the dead-man's switch only once) and keeps them in
    ``log``; ``workdir/url`` holds Alertmanager's URL once both answer."""
    import asyncio
    import signal

    from aiohttp import web

    from alerts.amconfig import Channels, render
    from alerts.rules_yaml import default_rules_path, load_rules

    seen_deadman = False

    async def hook(request: web.Request) -> web.Response:
        nonlocal seen_deadman
        name, payload = request.match_info["name"], await request.json()
        log.write(json.dumps({"receiver": name, **payload}) + "\n")
        log.flush()
        if name != "deadman" or not seen_deadman:
            print(_summary(name, payload) + ("\n  (the Watchdog: shown once)"
                                             if name == "deadman" else ""), flush=True)
            seen_deadman = seen_deadman or name == "deadman"
        return web.json_response({})

    app = web.Application()
    app.router.add_post("/hook/{name}", hook)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    rx = f"http://127.0.0.1:{port}/hook"
    am = Alertmanager(workdir, files={"pantau.tmpl": template}, config=render(
        load_rules(default_rules_path()),
        Channels(webhook=f"{rx}/{{receiver}}", deadman=f"{rx}/deadman", group_wait_s=10,
                 group_interval_s=60, repeat_interval_s=4 * 3600)))
    await asyncio.to_thread(am.start)
    (workdir / "url").write_text(am.url)  # once both answer: run.sh waits for it
    print(f"alertmanager {am.url} (API v2, no web UI); notifications -> {log.name}", flush=True)
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await asyncio.to_thread(am.stop)
        await runner.cleanup()


def main(workdir: Path) -> None:
    """The demo's Alertmanager and local receiver in the foreground (scripts/run.sh)."""
    import asyncio
    from importlib import resources

    template = (resources.files("alerts") / "data" / "pantau.tmpl").read_text(encoding="utf-8")
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "url").unlink(missing_ok=True)
    with open(workdir / "notifications.jsonl", "a", encoding="utf-8") as log:
        asyncio.run(_demo(workdir, template, log))


if __name__ == "__main__":  # python -m pantau.devstack.alertmanager DIR
    import sys

    main(Path(sys.argv[1]).resolve())
