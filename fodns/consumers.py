"""The consumers of the change feed in a fodns process, and the Feed that wakes them.

Every consumer keeps a cursor (the seq of the last event it applied) and catches
up from the log (fodns/feed.py). Two follow it here:

- `TableFollower`: a process's answer table (the API process's with workers = 1,
  each worker's own otherwise), woken as soon as a change commits;
- `NotifyFollower`: NOTIFY to secondaries (RFC 1996), which follows the *served
  frontier*, not the commit: it reads the log only up to the seq that every DNS
  process serves, so a secondary that asks for the SOA as soon as it is told
  gets the new serial, never the old one (and would then wait for its refresh
  timer).

`Feed` runs them in the API process: the store publishes each commit
(Store.on_commit, on the writer thread), the Feed catches its log followers up
on the event loop (a burst of commits is one catch-up), and whenever the served
frontier may have moved (a table caught up, a worker reported) the served
followers and the API's `served` waits look again. A slow safety tick does the
same without any wake-up, so a change written by another process, or a lost
wake-up, is served one tick later, never lost.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterable
from typing import Protocol

from fodns.acmezone import apply_challenges
from fodns.feed import SAFETY_POLL_INTERVAL, Consumer, Touched, TouchedSource, catch_up
from fodns.groups import apply_groups
from fodns.logs import get_logger
from fodns.table import AnswerTable

log = get_logger()
# A `served` wait looks at the frontier again after this long even when nothing
# said it moved: a worker that died unheard no longer holds it back.
SERVED_RECHECK = 0.05


class TableFollower:
    """Keeps a process's answer table in step with the store's event log: a consumer
    of the change feed (see fodns/feed.py).

    Its cursor is the seq of the last event applied; `catch_up` applies what the
    events after it touched, in sequence order, never an older state over a newer
    one, however changes and wake-ups interleave. If a batch cannot be built, its
    groups are applied one by one and any that still fail are left as they were,
    logged and counted, so one bad group never holds up the others.
    """

    def __init__(
        self, table: Callable[[], AnswerTable], store: TouchedSource, applied_seq: int
    ) -> None:
        self.table = table
        self.store = store
        self.applied_seq = applied_seq
        self.failed_groups = 0  # groups skipped because their answers could not be built

    def catch_up(self) -> int:
        """Apply every event after the cursor; the new cursor."""
        return catch_up(self.store, self)

    def apply(self, touched: Touched) -> None:
        """Install what a run of events touched (see feed.Consumer): the ACME challenges'
        records first, then the groups with each zone's serial, in one synchronous step
        (no query sees the one without the other)."""
        table = self.table()
        try:
            apply_challenges(table, touched.challenges.values())
        except Exception:  # checked values always build; a row edited by hand may not
            log.exception("challenges_not_served", seq=touched.last_seq)
        try:
            apply_groups(
                table, touched.groups, touched.apps, touched.serials, touched.deleted_groups
            )
            return
        except Exception:
            log.exception("table_update_failed", seq=touched.last_seq, retry="group by group")
        for group in touched.groups:
            try:
                apply_groups(table, [group], touched.apps, touched.serials)
            except Exception as exc:
                self.failed_groups += 1
                log.error(
                    "group_not_served",
                    zone=group.zone,
                    group=group.label,
                    seq=touched.last_seq,
                    error=str(exc),
                    kept="its previous answer",
                )
        apply_groups(table, [], {}, touched.serials, touched.deleted_groups)


class BoundedSource(Protocol):
    """The store's read of the log with an upper bound (see store.Store.touched_since)."""

    def touched_since(self, seq: int, limit: int = ..., upto: int | None = None) -> Touched: ...


class _UpTo:
    """The log read no further than `upto`: what a served follower catches up from."""

    def __init__(self, store: BoundedSource, upto: int) -> None:
        self._store = store
        self._upto = upto

    def touched_since(self, seq: int) -> Touched:
        if seq >= self._upto:
            return Touched(last_seq=seq)
        return self._store.touched_since(seq, upto=self._upto)


class NotifyFollower:
    """NOTIFY as a consumer of the feed: the zones whose serial moved, once served.

    Its cursor follows the served frontier (`served_up_to`), so the zones it
    learns of are those of changes every DNS process already serves. The serial
    it compares is the one DNS serves (`served_serial`: the least among the DNS
    processes, None while one of them is not serving), never the store's, which
    may already hold a later change not served yet: a zone is announced whenever
    that serial differs from the one last announced, so every change that moves
    a serial is told, whoever wrote it (this API, another process on the same
    database, a zone file reload).
    """

    def __init__(
        self,
        store: BoundedSource,
        applied_seq: int,
        zones: Iterable[str],
        served_serial: Callable[[str], int | None],
        announce: Callable[[str], None],
    ) -> None:
        self.store = store
        self.applied_seq = applied_seq
        self.zones = tuple(zones)
        self.served_serial = served_serial
        self.announce = announce  # notify.Notifier.changed: starts or marks a round
        self._told = {zone: served_serial(zone) for zone in self.zones}
        self._moved: set[str] = set()  # touched zones not yet compared

    def served_up_to(self, frontier: int) -> None:
        """Every DNS process serves the events up to `frontier`: follow the log that
        far and announce the zones whose served serial moved."""
        if frontier > self.applied_seq:
            catch_up(_UpTo(self.store, frontier), self)
        self._announce()

    def apply(self, touched: Touched) -> None:
        """The zones a run of served events touched (see feed.Consumer)."""
        self._moved.update(zone for zone in touched.serials if zone in self._told)

    def zones_reloaded(self) -> None:
        """The zone files were reloaded (SIGHUP) and every DNS process has finished:
        a file edit moves a serial without an event."""
        self._moved.update(self.zones)
        self._announce()

    def _announce(self) -> None:
        for zone in sorted(self._moved):
            serial = self.served_serial(zone)
            if serial is None:
                continue  # a DNS process is not serving yet: look again next time
            self._moved.discard(zone)
            if serial != self._told.get(zone):
                self._told[zone] = serial
                self.announce(zone)


class ServedFollower(Protocol):
    """A consumer that must not run ahead of DNS (NotifyFollower)."""

    def served_up_to(self, frontier: int) -> None: ...


class Feed:
    """The change feed in the API process: wakes its consumers, and says when a change
    is served.

    `frontier()` is the seq every DNS process serves (None while one is not
    serving): with workers = 1 the table follower's cursor, else the least of the
    workers' reported cursors. `committed(seq)` is what the store calls after each
    commit (from its writer thread); `progressed()` is what the worker pool calls
    when a worker reports. The API awaits `served(seq)`.
    """

    def __init__(
        self,
        frontier: Callable[[], int | None],
        served_timeout: float,
        safety_interval: float = SAFETY_POLL_INTERVAL,
    ) -> None:
        self.frontier = frontier
        self.served_timeout = served_timeout
        self.safety_interval = safety_interval
        self._log_followers: list[tuple[TouchedSource, Consumer]] = []
        self._served_followers: list[ServedFollower] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._catch_up_scheduled = False
        self._served_scheduled = False
        self._tick: asyncio.Task[None] | None = None
        # Set, and replaced by a new one, whenever the frontier may have moved: what a
        # `served` wait sleeps on.
        self._progress = asyncio.Event()

    def follow_log(self, source: TouchedSource, consumer: Consumer) -> None:
        """Catch `consumer` up from `source` as soon as a change commits."""
        self._log_followers.append((source, consumer))

    def follow_served(self, follower: ServedFollower) -> None:
        """Tell `follower` whenever the served frontier may have moved."""
        self._served_followers.append(follower)

    def start(self) -> None:
        """Bind to the running loop and start the safety tick."""
        self._loop = asyncio.get_running_loop()
        self._tick = self._loop.create_task(self._safety_tick())

    async def close(self) -> None:
        self._loop = None  # later commits are no longer handed to this loop
        if self._tick is not None:
            self._tick.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._tick

    def committed(self, seq: int) -> None:
        """Event `seq` is committed. Called on the store's writer thread (on_commit):
        hands over to the event loop and returns at once."""
        loop = self._loop
        if loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile: stopping
                loop.call_soon_threadsafe(self.published, seq)

    def published(self, seq: int) -> None:
        """On the loop: a change is committed; catch the log followers up soon. Commits
        published before that catch-up runs are applied by it: one read for a burst."""
        if self._catch_up_scheduled or self._loop is None:
            return
        self._catch_up_scheduled = True
        self._loop.call_soon(self._catch_up)

    def _catch_up(self) -> None:
        self._catch_up_scheduled = False
        for source, consumer in self._log_followers:
            try:
                catch_up(source, consumer)
            except Exception:  # the database could not be read: /healthz shows the lag
                log.exception("table_catch_up_failed", applied=consumer.applied_seq)
        self.progressed()

    def progressed(self) -> None:
        """The served frontier may have moved: `served` waits look again, then the
        served followers. In that order: a request waiting for its change is the
        one someone is timing, and NOTIFY's read of the log can come a moment later
        (the waiters resume before the callback scheduled after them runs)."""
        progress, self._progress = self._progress, asyncio.Event()
        progress.set()
        if self._served_followers and not self._served_scheduled and self._loop is not None:
            self._served_scheduled = True
            self._loop.call_soon(self._tell_served_followers)

    def _tell_served_followers(self) -> None:
        self._served_scheduled = False
        frontier = self.frontier()
        if frontier is None:
            return
        for follower in self._served_followers:
            try:
                follower.served_up_to(frontier)
            except Exception:  # the database could not be read: the next tick retries
                log.exception("served_follower_failed", frontier=frontier)

    async def served(self, seq: int) -> bool:
        """Wait until every DNS process serves event `seq`; False if one does not
        within `served_timeout` (or none is serving)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.served_timeout
        while True:
            frontier = self.frontier()
            if frontier is not None and frontier >= seq:
                return True
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._progress.wait(), min(remaining, SERVED_RECHECK))

    async def _safety_tick(self) -> None:
        # Nothing announces a change written by another process (or a wake-up that was
        # lost): look at the log now and then anyway.
        while True:
            await asyncio.sleep(self.safety_interval)
            self._catch_up()
