"""`Delivery`: Pantau's alerts to every Alertmanager replica, as Prometheus sends them, plus
what Alertmanager lacks (acknowledgement silences, escalation).

Each round (at once after a change, else every ``resend_s``):

1. escalation: a firing alert not acknowledged climbs one tier per ``escalate_<severity>_s``
   since Pantau raised it (up to ``max_tier``); each tier above 1 is sent as a copy of the
   alert with the label ``tier`` (the routing tree sends it to supervisors); acknowledging
   ends them;
2. silences: an acknowledged firing alert has a silence on every replica matching its labels,
   extended while it fires; once it resolved the silences are expired *first*, and only then
   is the resolve sent, so the channel hears it (a silenced alert's resolve is swallowed);
3. the payload: every firing alert with ``endsAt`` 4 rounds ahead (Alertmanager resolves it by
   itself should Pantau die), every resolved one with its ``endsAt``, kept until
   ``resolved_keep_s`` passed and every replica took it; each firing one carries an
   acknowledgement link (not ``info`` ones: the Watchdog, tickets, which page nobody);
4. every replica gets the whole payload: one attempt per replica per round
   (`alerts.alertmanager.AlertmanagerClient`); a failed replica is tried again after a
   jittered backoff doubling up to ``retry_max_s`` (retry lives here, once).

Time comes from the injected ``clock`` (ns). Only `run` touches the network.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable, Sequence
from typing import Any

from alerts.alertmanager import AlertmanagerClient, NotifyError, rfc3339
from alerts.lifecycle import Alert, Book
from alerts.links import sign
from alerts.settings import AlertSettings
from core.metrics import DELAY_BUCKETS, Metrics

log = logging.getLogger("pantau.alerts")
S = 1_000_000_000
HELP: dict[str, tuple[str, str]] = {
    "pantau_alertmanager_posts_total": ("counter", "Posts of alerts to an Alertmanager replica, "
                                        "by replica and result (ok, retryable, refused)."),
    "pantau_alertmanager_silence_calls_total": ("counter", "Silence creations, extensions and "
                                                "expiries for acknowledgements, by result."),
    "pantau_alerts_escalations_total": ("counter", "Alerts raised to a higher tier, by "
                                        "severity."),
    "pantau_alert_delivery_seconds": ("histogram", "From Pantau raising an alert (firing) to "
                                      "an Alertmanager replica accepting it, by replica: the "
                                      "part of the way to the on-call phone that is Pantau's."),
}


class Delivery:
    def __init__(self, book: Book, clients: Sequence[AlertmanagerClient],
                 settings: AlertSettings, key: bytes, metrics: Metrics, *,
                 clock: Callable[[], int]) -> None:
        self.book, self.clients, self.settings = book, tuple(clients), settings
        self.key, self.metrics, self.clock = key, metrics, clock
        metrics.describe(HELP)
        self.wake = asyncio.Event()
        self.replicas = tuple(c.url for c in self.clients)
        self._retry_at = {r: 0 for r in self.replicas}
        self._delay = {r: 0.0 for r in self.replicas}
        book.subscribe(lambda alert, event: self.wake.set())

    # -- one round ------------------------------------------------------------------------
    async def round(self, now_ns: int) -> None:
        """Escalate, keep silences, send the payload to each replica due (see the module
        docstring)."""
        self.escalate(now_ns)
        for client in self.clients:
            if self._retry_at[client.url] > now_ns:
                continue
            try:
                await self._silences(client, now_ns)
                alerts = [a for a in self.book.alerts.values() if self._due(a, client.url)]
                await client.notify(self.payload(alerts, now_ns))
            except NotifyError as e:
                self._failed(client.url, e, now_ns)
                continue
            self._retry_at[client.url], self._delay[client.url] = 0, 0.0
            self.metrics.counter("pantau_alertmanager_posts_total", replica=client.url,
                                 result="ok").inc()
            accepted_ns = self.clock()
            accepted = self.metrics.histogram("pantau_alert_delivery_seconds", DELAY_BUCKETS,
                                              replica=client.url)
            for a in alerts:
                first = a.sent.get(client.url, 0) < a.raised_ns if a.state == "firing" \
                    else client.url not in a.sent  # (emptied when it resolved)
                if first and a.state == "firing":
                    accepted.observe(max(accepted_ns - a.raised_ns, 0) / S)
                a.sent[client.url] = now_ns
                if first:
                    self.book.save(a)  # a restart neither counts it again nor sends it twice
        self.book.drop_resolved(now_ns, self.replicas)

    def _due(self, a: Alert, replica: str) -> bool:
        if a.state == "firing":
            return True
        return a.state == "resolved" and replica not in a.silences

    def _failed(self, replica: str, e: NotifyError, now_ns: int) -> None:
        result = "retryable" if e.retryable else "refused"
        self.metrics.counter("pantau_alertmanager_posts_total", replica=replica,
                             result=result).inc()
        if not e.retryable:  # a payload it refuses is not made acceptable by waiting
            log.error("%s", e)
            return
        delay = min(max(self._delay[replica] * 2, 0.5), self.settings.retry_max_s)
        self._delay[replica] = delay
        self._retry_at[replica] = now_ns + int(random.uniform(delay / 2, delay) * S)
        log.warning("%s; trying again in up to %.1f s", e, delay)

    def escalate(self, now_ns: int) -> None:
        s = self.settings
        for a in self.book.alerts.values():
            delay = s.escalate_after_s(a.labels["severity"])
            if a.state != "firing" or a.acked_by or delay <= 0:
                continue
            tier = min(s.max_tier, 1 + int((now_ns - a.raised_ns) / (delay * S)))
            if tier > a.tier:
                a.tier, a.tier_ns = tier, now_ns
                self.metrics.counter("pantau_alerts_escalations_total",
                                     severity=a.labels["severity"]).inc()
                self.book.save(a, a.event(now_ns, f"escalated to tier {tier}"))

    async def _silences(self, client: AlertmanagerClient, now_ns: int) -> None:
        """Keep each acknowledged firing alert silenced on ``client``; expire the silences of
        resolved ones (before their resolve is sent)."""
        length = int(self.settings.silence_s * S)
        for a in list(self.book.alerts.values()):
            sid = a.silences.get(client.url, "")
            if a.state == "firing" and a.acked_by and (
                    not sid or a.silence_until_ns - now_ns < length // 2):
                a.silences[client.url] = await self._silence_call(client.silence(
                    a.labels, starts_ns=now_ns, ends_ns=now_ns + length, created_by=a.acked_by,
                    comment=a.ack_comment, silence_id=sid))
                a.silence_until_ns = now_ns + length
                self.book.save(a)
            elif a.state != "firing" and sid:
                await self._silence_call(client.expire(sid))
                del a.silences[client.url]
                self.book.save(a)

    async def _silence_call(self, call: Any) -> Any:
        try:
            out = await call
        except NotifyError:
            self.metrics.counter("pantau_alertmanager_silence_calls_total", result="failed").inc()
            raise
        self.metrics.counter("pantau_alertmanager_silence_calls_total", result="ok").inc()
        return out

    def payload(self, alerts: Sequence[Alert], now_ns: int) -> list[dict[str, Any]]:
        """Alertmanager's API v2 alerts for ``alerts`` (tier copies included)."""
        s = self.settings
        ahead = now_ns + int(4 * s.resend_s * S)
        out = []
        for a in alerts:
            notes = dict(a.annotations)
            if a.state == "firing" and not a.acked_by and a.labels["severity"] != "info":
                token = sign(self.key, a.id, a.fired_ns, now_ns / S, s.ack_link_ttl_s)
                notes["ack_url"] = f"{s.public_url.rstrip('/')}/ack/{token}"
            if a.acked_by:
                notes["acknowledged_by"] = a.acked_by
            # startsAt and endsAt on Pantau's clock, as Prometheus sends them: Alertmanager
            # waits group_wait from startsAt before a new group's first notification, and that
            # wait is what lets its inhibitions see the higher stage posted beside the lower
            # one. With the reading's time, a catch-up or a replay (older than group_wait) was
            # notified at once, the muted stage with it. The readings' times go as annotations.
            starts = a.raised_ns or a.fired_ns  # (alerts saved before raised_ns: the data's)
            notes["observed_at"] = rfc3339(a.fired_ns)
            if a.state == "firing":
                ends = ahead
            else:
                ends = max(a.ended_ns or a.resolved_ns, starts)
                notes["cleared_at"] = rfc3339(a.resolved_ns)
            base = {"labels": a.labels, "annotations": notes, "startsAt": rfc3339(starts),
                    "endsAt": rfc3339(ends), "generatorURL": f"{s.public_url}/api/alerts/{a.id}"}
            out.append(base)
            tier_ends = min(ends, a.acked_ns) if a.acked_by else ends
            for tier in range(2, a.tier + 1):
                out.append(base | {"labels": a.labels | {"tier": str(tier)},
                                   "endsAt": rfc3339(tier_ends)})
        return out

    # -- the loop -------------------------------------------------------------------------
    async def run(self) -> None:
        """Rounds until cancelled: at once after a change (50 ms to gather a burst), else
        every ``resend_s``, or when a failed replica's backoff runs out."""
        async with contextlib.AsyncExitStack() as stack:
            for c in self.clients:
                await stack.enter_async_context(c)
            while True:
                self.wake.clear()
                now = self.clock()
                await self.round(now)
                pending = [t for t in self._retry_at.values() if t > now]
                wait = min([self.settings.resend_s, *((t - now) / S for t in pending)])
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.wake.wait(), max(wait, 0.05))
                await asyncio.sleep(0.05)
