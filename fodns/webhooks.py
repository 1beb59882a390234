"""Webhook delivery: each active webhook follows the event log from its own cursor and
POSTs the events it wants to its URL, signed, in seq order, one request in flight, at
least once.

It runs in the API's process (with `workers = 1` and with more), on the API's event
loop: one task per webhook, woken when a change commits (Store.on_commit) and looking
at the log now and then anyway (a change another process wrote). Like every follower
of the log (fodns/feed.py) it keeps a cursor and reads the events after it; unlike
them it awaits a receiver for each event, so it reads the log on its own, a bounded
run of events at a time, on a thread. A receiver that is slow, hangs or is gone holds
up only its own webhook's task: DNS, the API, the Route53 mirror and the other
webhooks never wait for it.

An event is retried (the same bytes, the same Idempotency-Key) after waits that double
from `[webhooks] first_retry` up to an hour, until `[webhooks] give_up_after` after its
first attempt; then the webhook stops (state failed, the seq kept) until a person
resumes it at that event. The cursors and the attempts are saved in one write a second,
never one per event (a switch would queue behind each), so after a crash a webhook
starts from the last saved cursor and may deliver an event again: that is what the
Idempotency-Key is for.

Decisions beyond the design page:

- Events are sent once committed, not once every DNS process serves them (NOTIFY waits
  for that): a stuck DNS worker must not hold up the news of a switch. A receiver that
  asks DNS at once may, for a few milliseconds, get the old answer.
- A webhook changed while it waits to retry (a new URL, a new secret) is retried at once.
- Redirects are failures (a receiver that moved says so in the deliveries); no Retry-After
  is read: the schedule is fodns's, the same for every receiver.
- Proxy settings of the environment are not used (aiohttp's trust_env=False): where the
  receivers are is the URL's to say.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, replace
from typing import Any

import aiohttp

from fodns.config import WebhooksConfig
from fodns.logs import get_logger
from fodns.metrics import WebhookMetrics, WebhookStats
from fodns.model import Event
from fodns.rows import utc_now
from fodns.webhookmodel import (
    TEST_KIND,
    Delivery,
    Kind,
    Webhook,
    body_of,
    event_kind,
    headers_of,
    signature,
)
from fodns.webhookstate import Cursor, Stored, Transactions, WebhookState

log = get_logger()
RETRY_CAP = 3600.0  # the longest wait between two attempts
READ_BATCH = 200  # events read from the log at once
# How often a webhook's task looks at the log without a wake-up: a change written by
# another process (nothing here hears of its commit). Every commit of this process wakes
# the tasks at once, so this is only the safety net, and a hundred webhooks' polls stay
# far from a load on the database.
IDLE_POLL = 5.0
SAVE_INTERVAL = 1.0  # cursors and attempts are written at most this often
RECONCILE_INTERVAL = 10.0  # the webhooks are read again this often (changes from elsewhere)
ERROR_PAUSE = 1.0  # after the database could not be read, or a fault of fodns's own
HELD_MAX = 20_000  # attempts held while the database takes none (the oldest go first)
# A receiver's answer body is read (so its connection can carry the next request) when it
# says it is this small; anything else is not read, and the connection is closed.
ANSWER_READ_MAX = 64 * 1024
ERROR_MAX = 500  # characters of an attempt's error kept


@dataclass(frozen=True)
class Outcome:
    """What one POST came to: the HTTP status (None: no answer) and why it failed (None:
    a 2xx, delivered)."""

    status: int | None
    error: str | None
    seconds: float


class WebhookDeliverer:
    """Every active webhook's task, the HTTP client they share, and their saved progress."""

    def __init__(
        self,
        store: Transactions,
        config: WebhooksConfig,
        metrics: WebhookMetrics | None = None,
    ) -> None:
        self.state = WebhookState(store)
        self.config = config
        self.metrics = metrics
        if metrics is not None:
            metrics.follow(self.stats)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._session: aiohttp.ClientSession | None = None
        self._timeout = aiohttp.ClientTimeout(total=config.timeout)
        self._followers: dict[str, _Follower] = {}
        self._hooks: dict[str, Webhook] = {}  # every webhook, as last read
        self._cursors: dict[str, Cursor] = {}  # each webhook's, newest known here
        self._dirty: set[str] = set()  # cursors moved since the last save
        self._held: list[tuple[str, Delivery]] = []  # attempts not yet saved
        self._newest = 0  # the log's newest seq, as far as this process knows
        self._lock: asyncio.Lock | None = None  # one reading of the webhooks at a time
        self._save_lock: asyncio.Lock | None = None
        self._background: list[asyncio.Task[None]] = []

    # ---- called from other threads ----

    def committed(self, seq: int) -> None:
        """Event `seq` is committed (Store.on_commit, on the store's writer thread): hand
        over to the loop and return at once."""
        loop = self._loop
        if loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile: stopping
                loop.call_soon_threadsafe(self._published, seq)

    # ---- on the loop ----

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._lock = asyncio.Lock()
        self._save_lock = asyncio.Lock()
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0),  # one request per webhook at most
            cookie_jar=aiohttp.DummyCookieJar(),
            timeout=self._timeout,
        )
        try:
            await self.reconcile()
        except Exception:  # the periodic reading tries again
            log.exception("webhooks_not_read")
        self._background = [
            self._loop.create_task(self._save_every()),
            self._loop.create_task(self._reconcile_every()),
        ]

    async def close(self) -> None:
        """Stop every task (a request in flight is abandoned: it is sent again after the
        restart) and save what was done."""
        self._loop = None
        for task in self._background:
            task.cancel()
        for task in self._background:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for webhook_id in list(self._followers):
            await self._stop(webhook_id)
        await self.save()
        if self._session is not None:
            await self._session.close()

    def _published(self, seq: int) -> None:
        self._newest = max(self._newest, seq)
        for follower in self._followers.values():
            follower.wake.set()

    async def reconcile(self) -> None:
        """Read the webhooks and bring the tasks in line: one for each active webhook,
        with its URL, filters and secret as they are now. The API calls it after each
        change to a webhook, so a pause or a resume holds before the reply."""
        assert self._lock is not None, "start() first"
        async with self._lock:
            stored, newest = await asyncio.to_thread(self.state.stored)
            self._newest = max(self._newest, newest)
            present = {item.webhook.id: item for item in stored}
            for webhook_id in list(self._followers):
                item = present.get(webhook_id)
                if item is None or item.webhook.state != "active":
                    await self._stop(webhook_id)
                    self._end_retries(webhook_id)
            for webhook_id in list(self._hooks):
                if webhook_id not in present:
                    self._forget(webhook_id)
            for item in stored:
                self._take(item)

    def _take(self, item: Stored) -> None:
        webhook_id = item.webhook.id
        self._hooks[webhook_id] = item.webhook
        follower = self._followers.get(webhook_id)
        if follower is not None:
            if (follower.hook, follower.secret) != (item.webhook, item.secret):
                follower.hook, follower.secret = item.webhook, item.secret
                follower.nudge.set()
            return
        held = self._cursors.get(webhook_id)
        # Progress made here and not yet saved is ahead of the database's.
        cursor = held if held is not None and held.seq > item.cursor.seq else item.cursor
        self._cursors[webhook_id] = cursor
        if item.webhook.state == "active" and self._loop is not None:
            follower = _Follower(self, item, cursor)
            self._followers[webhook_id] = follower
            follower.task = self._loop.create_task(follower.run())

    async def _stop(self, webhook_id: str) -> None:
        follower = self._followers.pop(webhook_id, None)
        if follower is not None and follower.task is not None:
            follower.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await follower.task

    def _end_retries(self, webhook_id: str) -> None:
        """A webhook paused: the event it was retrying, if any, gets a new window of
        retries when it is resumed (as the store has it: see WebhookState.update)."""
        cursor = self._cursors.get(webhook_id)
        if cursor is not None and cursor.pending_seq is not None:
            self._cursors[webhook_id] = Cursor(cursor.seq)
            self._dirty.add(webhook_id)

    def _forget(self, webhook_id: str) -> None:
        """A webhook deleted: nothing of it stays, its metrics' series included."""
        self._hooks.pop(webhook_id, None)
        self._cursors.pop(webhook_id, None)
        self._dirty.discard(webhook_id)
        self._held = [(hook, attempt) for hook, attempt in self._held if hook != webhook_id]
        if self.metrics is not None:
            self.metrics.forget(webhook_id)

    # ---- what the tasks report ----

    def moved(self, follower: _Follower, cursor: Cursor) -> None:
        follower.cursor = cursor
        self._cursors[follower.hook.id] = cursor
        self._dirty.add(follower.hook.id)

    def recorded(self, webhook_id: str, delivery: Delivery, seconds: float) -> None:
        self._held.append((webhook_id, delivery))
        if len(self._held) > HELD_MAX:
            del self._held[: len(self._held) - HELD_MAX]
        if self.metrics is not None:
            self.metrics.attempted(webhook_id, delivery.result, seconds)

    async def gave_up(self, follower: _Follower, event: Event, cursor: Cursor, why: str) -> None:
        """The webhook's task gave up on `event`: the webhook stops, failed, in the store
        and in the log, its cursor just before the event."""
        webhook_id = follower.hook.id
        before = Cursor(cursor.seq)
        self._cursors[webhook_id] = before
        self._dirty.discard(webhook_id)  # the failure's write saves it
        log.warning("webhook_gave_up", webhook=webhook_id, seq=event.seq, reason=why)
        try:
            change = await asyncio.to_thread(self.state.fail, webhook_id, before, event, why)
        except Exception:
            # Not recorded: it is still active in the store, so the next reading starts
            # it again, and the event gets a new window of retries.
            log.exception("webhook_failure_not_recorded", webhook=webhook_id, seq=event.seq)
            change = None
        finally:
            # Only now: a reading of the webhooks meanwhile, which still finds it active,
            # must not start another task for it beside this one.
            if self._followers.get(webhook_id) is follower:
                del self._followers[webhook_id]
        if change is not None and change.event is not None:
            self._hooks[webhook_id] = replace(
                follower.hook, active=False, failed_seq=event.seq, failed_at=change.event.at
            )

    # ---- the HTTP request ----

    async def post(
        self, webhook: Webhook, secret: str, body: bytes, seq: int | None, kind: str
    ) -> Outcome:
        """One signed POST of `body`; never raises for anything the receiver or the
        network does."""
        assert self._session is not None, "start() first"
        headers = headers_of(webhook.id, seq, kind)
        headers["Fodns-Signature"] = signature(secret, int(time.time()), body)
        started = time.perf_counter()
        status: int | None = None
        error: str | None = None
        try:
            async with self._session.post(
                webhook.url, data=body, headers=headers, allow_redirects=False
            ) as answer:
                status = answer.status
                if 300 <= status < 400:
                    where = answer.headers.get("Location", "nowhere")[:200]
                    error = f"HTTP {status}: a redirect (to {where}), not followed"
                elif not 200 <= status < 300:
                    error = f"HTTP {status}"
                length = answer.content_length
                if length is not None and length <= ANSWER_READ_MAX:
                    with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                        await answer.read()
        except TimeoutError:
            error = f"no answer within {self.config.timeout:g} s ([webhooks] timeout)"
        except (aiohttp.ClientError, OSError, ValueError) as exc:
            error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        return Outcome(status, None if error is None else error[:ERROR_MAX], _since(started))

    async def test(self, webhook_id: str) -> Delivery:
        """Send the test event to a webhook now, beside its task (whatever its state):
        the attempt, recorded with the others."""
        webhook, secret = await asyncio.to_thread(self.state.secret, webhook_id)
        at = utc_now()
        outcome = await self.post(
            webhook, secret, body_of(webhook.id, None, TEST_KIND), None, TEST_KIND
        )
        delivery = _delivery(None, TEST_KIND, 1, at, outcome, TEST_KIND)
        self.recorded(webhook.id, delivery, outcome.seconds)
        return delivery

    # ---- what the API and /metrics read ----

    def stats(self) -> WebhookStats:
        newest = self._newest
        return WebhookStats(
            lag_events={
                webhook_id: max(0, newest - self._cursors[webhook_id].seq)
                for webhook_id in self._hooks
                if webhook_id in self._cursors
            },
            failed=sum(hook.state == "failed" for hook in self._hooks.values()),
        )

    def health(self) -> list[dict[str, Any]]:
        """/healthz's view of each webhook: its state, how many events it has still to
        follow, and the event it is retrying (with attempts and for how long), if any."""
        stats = self.stats()
        now = time.time()
        report = []
        for webhook_id, hook in sorted(self._hooks.items()):
            cursor = self._cursors.get(webhook_id)
            retrying = None
            if cursor is not None and cursor.pending_seq is not None:
                since = cursor.pending_since
                retrying = {
                    "seq": cursor.pending_seq,
                    "attempts": cursor.pending_attempts,
                    "seconds": None if since is None else round(now - since, 1),
                }
            report.append(
                {
                    "id": webhook_id,
                    "url": hook.url,
                    "state": hook.state,
                    "lag_events": stats.lag_events.get(webhook_id, 0),
                    "retrying": retrying,
                    "failed_seq": hook.failed_seq,
                }
            )
        return report

    # ---- saving ----

    async def _save_every(self) -> None:
        while True:
            await asyncio.sleep(SAVE_INTERVAL)
            await self.save()

    async def save(self) -> None:
        """Write the moved cursors and the attempts in one transaction; what fails to be
        written is kept for the next time."""
        assert self._save_lock is not None, "start() first"
        async with self._save_lock:  # one at a time: each takes what the last left
            await self._save_held()

    async def _save_held(self) -> None:
        if not self._dirty and not self._held:
            return
        cursors = {hook: self._cursors[hook] for hook in self._dirty if hook in self._cursors}
        self._dirty = set()
        attempts, self._held = self._held, []
        try:
            await asyncio.to_thread(self.state.save_progress, cursors, attempts)
        except Exception:
            log.exception("webhook_progress_not_saved", cursors=len(cursors))
            self._dirty |= set(cursors)
            self._held = [*attempts, *self._held][-HELD_MAX:]

    async def _reconcile_every(self) -> None:
        while True:
            await asyncio.sleep(RECONCILE_INTERVAL)
            try:
                await self.reconcile()
            except Exception:
                log.exception("webhooks_not_read")


class _Follower:
    """One active webhook's task: the log from its cursor, the events it wants, each
    delivered before the next."""

    def __init__(self, deliverer: WebhookDeliverer, stored: Stored, cursor: Cursor) -> None:
        self.deliverer = deliverer
        self.hook = stored.webhook
        self.secret = stored.secret
        self.cursor = cursor
        self.wake = asyncio.Event()  # a change committed
        self.nudge = asyncio.Event()  # the webhook changed: a retry goes at once
        self.task: asyncio.Task[None] | None = None

    async def run(self) -> None:
        """Until cancelled, or until it gives up on an event. A fault of fodns's own (a
        database that cannot be read) pauses it a moment; nothing ends it."""
        while True:
            try:
                if not await self._follow():
                    return
            except Exception:
                log.exception("webhook_task_failed", webhook=self.hook.id, cursor=self.cursor.seq)
                await asyncio.sleep(ERROR_PAUSE)

    async def _follow(self) -> bool:
        """Deliver the events after the cursor, waiting for more when there are none;
        False once it has given up on one."""
        state = self.deliverer.state
        while True:
            self.wake.clear()  # before the read: a commit after it wakes the wait below
            events = await asyncio.to_thread(state.events_after, self.cursor.seq, READ_BATCH)
            if not events:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.wake.wait(), IDLE_POLL)
                continue
            for event in events:
                kind = event_kind(event)
                if (
                    kind is not None
                    and self.hook.wants(kind, event)
                    and not await self._deliver(event, kind)
                ):
                    return False  # given up: the webhook has stopped
                self.deliverer.moved(self, Cursor(event.seq))

    async def _deliver(self, event: Event, kind: Kind) -> bool:
        """Send one event until it is delivered (True) or given up on (False)."""
        deliverer, config = self.deliverer, self.deliverer.config
        body = body_of(self.hook.id, event, kind)
        cursor = self.cursor
        if cursor.pending_seq != event.seq:
            cursor = Cursor(cursor.seq, event.seq, None, 0)
        while True:
            since = time.time() if cursor.pending_since is None else cursor.pending_since
            cursor = Cursor(cursor.seq, event.seq, since, cursor.pending_attempts + 1)
            deliverer.moved(self, cursor)
            at = utc_now()
            outcome = await deliverer.post(self.hook, self.secret, body, event.seq, kind)
            waited = time.time() - since
            if outcome.error is None:
                result = "delivered"
            elif waited >= config.give_up_after:
                result = "failed"
            else:
                result = "retrying"
            attempt = cursor.pending_attempts
            deliverer.recorded(
                self.hook.id,
                _delivery(event.seq, kind, attempt, at, outcome, result),
                outcome.seconds,
            )
            if result == "delivered":
                return True
            if result == "failed":
                why = (
                    f"gave up on event {event.seq} after {attempt} attempts in {waited:.0f} s"
                    f" (give_up_after {config.give_up_after:g} s): {outcome.error}"
                )
                await deliverer.gave_up(self, event, cursor, why)
                return False
            wait = min(
                config.first_retry * 2 ** min(attempt - 1, 32),
                RETRY_CAP,
                config.give_up_after - waited,
            )
            self.nudge.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.nudge.wait(), max(0.0, wait))


def _delivery(
    seq: int | None, kind: str, attempt: int, at: str, outcome: Outcome, result: str
) -> Delivery:
    return Delivery(
        seq=seq,
        kind=kind,
        attempt=attempt,
        at=at,
        status=outcome.status,
        error=outcome.error,
        latency_ms=round(outcome.seconds * 1000, 2),
        result=result,
    )


def _since(started: float) -> float:
    return time.perf_counter() - started
