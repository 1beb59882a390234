"""The health checker: runs every app's check, writes what it finds to the log, and
switches automatic groups; one per fodns, in the API's process, outside DNS.

The attempts themselves run in a child process (fodns/probeworker.py, at a lower CPU
priority than DNS, at most 256 at a time): each app every `interval` seconds, all
its addresses at once. Each round's results come back here, where the decisions
are: what one attempt found goes to that address's rise/fall tracker
(verdicts.AddressVerdict); the app's state as fodns sees it follows from its
addresses (min_healthy), and its state for decisions from every live probe's view
(fodns is the probe "local"; other hosts report through `report`, see `fodns
probe`), by quorum.

What changes is written as events like any other change (actor "health"), so DNS,
transfers, NOTIFY, the Route53 mirror and the dashboard follow it by the log:
`health_changed` for an app whose state or an address's state moved (with the
evidence), and `group_switched` for an automatic switch, made by
store.auto_switch only if, at commit, no person got there first. Decisions
(verdicts.decide) are made after each health change and once a second (a failback's
hold-down ends, a probe ages out); pins whose time is up are ended then too.

Nothing here is kept across a restart but the log: after a start every address and
app is unknown until its first verdict, and unknown never switches anything (the
last known states are shown meanwhile, from the store's health_last).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from fodns.checks import LOCAL_PROBE, CheckSpec
from fodns.errors import Invalid
from fodns.logs import get_logger
from fodns.metrics import HealthMetrics
from fodns.model import SIDES, App, Group, Side
from fodns.probing import CheckResult
from fodns.rows import utc_from_epoch
from fodns.store import CheckedApp, HealthLast, Store
from fodns.verdicts import (
    AddressVerdict,
    Decision,
    HealthState,
    Pin,
    Policy,
    ProbeView,
    SideHealth,
    app_state,
    decide,
    down_evidence,
    quorum_state,
)

log = get_logger()

TICK = 0.25  # how often due checks are started and decisions looked at again (seconds)
DECIDE_EVERY = 1.0  # decisions and pins, when nothing changed meanwhile (seconds)
HOUR = 3600.0
# A line of the check process: one round of one app (32 addresses at most).
RESULT_LINE_MAX = 1024 * 1024
PROCESS_STOP_WAIT = 5.0
PROCESS_RESTART_WAIT = 1.0


def epoch(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


@dataclass
class AddressWatch:
    """One address of a checked app, as fodns checks it and as probes report it."""

    address: str
    hostname: str | None
    verdict: AddressVerdict
    last_result: CheckResult | None = None
    last_checked: float | None = None  # epoch
    # Remote probes' views of this address: probe -> (state, evidence).
    reported: dict[str, tuple[HealthState, dict[str, Any]]] = field(default_factory=dict)

    def local_json(self) -> dict[str, Any]:
        return {
            "state": self.verdict.state,
            "since": None if self.verdict.since is None else utc_from_epoch(self.verdict.since),
            "last_check_at": None
            if self.last_checked is None
            else utc_from_epoch(self.last_checked),
            "last_result": None if self.last_result is None else self.last_result.to_json(),
        }


@dataclass
class AppWatch:
    """One checked app: its addresses and its state for decisions."""

    id: int
    app: App
    spec: CheckSpec
    addresses: dict[str, AddressWatch] = field(default_factory=dict)
    state: HealthState = "unknown"
    since: float | None = None  # epoch of the last change of `state`
    down: tuple[str, ...] = ()  # addresses its answer leaves out (answers_follow_health)

    @property
    def up_since(self) -> float | None:
        return self.since if self.state == "up" else None

    def evidence(self) -> str:
        """The failing checks of its addresses that are down, as a person reads them in
        an event's reason (verdicts.decide puts them after the app's name)."""
        return down_evidence({a: w.verdict for a, w in self.addresses.items()})

    def min_healthy(self) -> int:
        """The check's min_healthy, but never more than the addresses there are (a
        hostname may resolve to fewer): otherwise the app would be down before any
        check had failed."""
        return max(1, min(self.spec.min_healthy, len(self.addresses)))


@dataclass
class RemoteProbe:
    name: str
    interval: float
    reported_at: float  # epoch

    def live(self, now: float) -> bool:
        # A probe that stops reporting ages out after three of its intervals.
        return now - self.reported_at < 3 * self.interval


class HealthChecker:
    """Runs the checks and the automatic failover of one fodns (see the module's docstring)."""

    def __init__(self, store: Store, metrics: HealthMetrics, *, concurrency: int = 256) -> None:
        self._store = store
        self._metrics = metrics
        self._concurrency = concurrency
        self._process: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None
        # The app list changes (`_watch` counts them); the count the check process
        # was last told of (-1: nothing yet, a new process).
        self._checks_changed = 0
        self._checks_sent = -1
        self._checks_wanted = asyncio.Event()  # set once an app has a check
        self._last_result = time.monotonic()  # when the check process last sent a round
        self._apps: dict[int, AppWatch] = {}
        self._probes: dict[str, RemoteProbe] = {}
        self._groups: list[Group] = []
        self._decisions: dict[tuple[str, str], Decision] = {}
        self._switch_times: dict[tuple[str, str], list[float]] = {}
        self._seen_seq = -1
        self._task: asyncio.Task[None] | None = None
        self._last_decided = 0.0
        self._started = time.time()

    # ---- lifetime ------------------------------------------------------------------

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())
        self._reader = asyncio.get_running_loop().create_task(self._read_results())

    async def close(self) -> None:
        for task in (self._task, self._reader):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        await self._stop_process()

    async def _run(self) -> None:
        await self._answers_start_unknown()
        while True:
            try:
                await self._refresh()
                await self._send_checks()
                if time.monotonic() - self._last_decided >= DECIDE_EVERY:
                    await self._housekeeping()
            except asyncio.CancelledError:
                raise
            except Exception:
                # A fault here (the database refusing a write, say) must not end health
                # checking for good: log it, and the next tick tries again.
                log.exception("health_checker_failed")
            await asyncio.sleep(TICK)

    # ---- the check process (fodns/probeworker.py) ----------------------------------

    async def _start_process(self) -> asyncio.subprocess.Process:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "fodns.probeworker",
            str(self._concurrency),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            limit=RESULT_LINE_MAX,
        )
        log.info("health_process_started", pid=process.pid)
        self._process, self._checks_sent = process, -1
        self._last_result = time.monotonic()  # silent from now on, not from before it ran
        return process

    async def _stop_process(self) -> None:
        process, self._process = self._process, None
        if process is None or process.returncode is not None:
            return
        assert process.stdin is not None
        process.stdin.close()  # its stdin closed: it stops by itself
        try:
            await asyncio.wait_for(process.wait(), PROCESS_STOP_WAIT)
        except TimeoutError:
            process.kill()
            await process.wait()

    async def _send_checks(self) -> None:
        """Tell the check process the apps to check, when they changed (only then: with
        thousands of apps, encoding the list takes tens of milliseconds of the loop
        that, with workers = 1, answers DNS)."""
        if self._process is None or self._checks_sent == self._checks_changed:
            return
        wanted = {
            "apps": [
                {"id": w.id, "web_head": list(w.app.web_head), "check": w.spec.to_json()}
                for w in self._apps.values()
            ]
        }
        assert self._process.stdin is not None
        self._process.stdin.write(json.dumps(wanted, separators=(",", ":")).encode() + b"\n")
        self._checks_sent = self._checks_changed
        with contextlib.suppress(ConnectionError):  # it died: _read_results restarts it
            await self._process.stdin.drain()

    async def _read_results(self) -> None:
        """Apply each round's results as the check process sends them; start it again
        when it dies (a second later, so a process that cannot start does not spin).
        It is started only once some app has a check: a fodns without checks runs no
        process for them."""
        while True:
            await self._checks_wanted.wait()
            process = await self._start_process()
            assert process.stdout is not None
            await self._send_checks()
            while line := await process.stdout.readline():
                self._last_result = time.monotonic()
                try:
                    round_ = json.loads(line)
                    watch = self._apps.get(int(round_["id"]))
                    if watch is None:
                        continue  # no longer checked (or checked otherwise now)
                    results = [
                        (str(address), hostname, CheckResult(**result))
                        for address, hostname, result in round_["results"]
                    ]
                    await self._apply_results(watch, results)
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("health_round_failed")
            code = await process.wait()
            log.error("health_process_died", pid=process.pid, exit_code=code)
            self._process = None
            await asyncio.sleep(PROCESS_RESTART_WAIT)

    async def _answers_start_unknown(self) -> None:
        """Decisions start from unknown, and unknown addresses are answered: an app
        whose answer left addresses out before the restart answers them all again
        until its checks say otherwise (an event says so)."""
        for checked in await asyncio.to_thread(self._store.checked_apps):
            if checked.app.down:
                await asyncio.to_thread(
                    self._store.record_health,
                    checked.id,
                    before={"state": "unknown", "down": list(checked.app.down)},
                    after={"state": "unknown", "down": []},
                    down=(),
                    last=(),
                    reason="fodns started: every address is unknown until its first verdict,"
                    " and answered meanwhile",
                )

    async def _refresh(self) -> None:
        """Read the checked apps and the automatic groups again after any change."""
        seq = await asyncio.to_thread(self._store.last_seq)
        if seq == self._seen_seq:
            return
        self._seen_seq = seq
        checked, groups = await asyncio.to_thread(self._read_state)
        self._watch(checked)
        self._groups = groups
        self._metrics.pinned.set(sum(group.pin is not None for group in groups))

    def _read_state(self) -> tuple[list[CheckedApp], list[Group]]:
        return self._store.checked_apps(), self._store.auto_groups()

    def _watch(self, checked: Sequence[CheckedApp]) -> None:
        """Keep a watch per checked app: a new check starts unknown, a changed one
        starts over, a removed one stops."""
        wanted = {item.id: item for item in checked}
        changed = False
        for app_id in list(self._apps):
            if app_id not in wanted or wanted[app_id].check != self._apps[app_id].spec:
                old = self._apps.pop(app_id)
                self._metrics.forget(old.app.name)
                changed = True
        for app_id, item in wanted.items():
            watch = self._apps.get(app_id)
            if watch is None:
                self._apps[app_id] = AppWatch(app_id, item.app, item.check, down=item.app.down)
                changed = True
            else:
                if watch.app.web_head != item.app.web_head:
                    watch.addresses.clear()  # new addresses: unknown again
                    changed = True
                watch.app = item.app
                watch.down = item.app.down
        if changed:
            self._checks_changed += 1
        if self._apps:
            self._checks_wanted.set()

    # ---- what the checks found ---------------------------------------------------------

    async def _apply_results(
        self, watch: AppWatch, results: Sequence[tuple[str, str | None, CheckResult]]
    ) -> None:
        now = time.time()
        moved: list[dict[str, Any]] = []
        last: list[HealthLast] = []
        present = {address for address, _, _ in results}
        for address in list(watch.addresses):
            if address not in present:  # a hostname resolving elsewhere now
                del watch.addresses[address]
        for address, hostname, result in results:
            tracked = watch.addresses.get(address)
            if tracked is None:
                tracked = AddressWatch(
                    address, hostname, AddressVerdict(watch.spec.fall, watch.spec.rise)
                )
                watch.addresses[address] = tracked
            before = tracked.verdict.state
            tracked.last_result, tracked.last_checked = result, now
            self._metrics.checked(watch.app.name, result.ok, result.latency_ms / 1000)
            after = tracked.verdict.record(result.ok, now, result.error)
            if after is not None:
                evidence = result.to_json()
                moved.append(
                    {
                        "address": address,
                        "probe": LOCAL_PROBE,
                        "from": before,
                        "to": after,
                        "evidence": evidence,
                    }
                )
                last.append(HealthLast(address, LOCAL_PROBE, after, utc_from_epoch(now), evidence))
        await self._settle(watch, moved, last, now)

    async def _settle(
        self,
        watch: AppWatch,
        moved: list[dict[str, Any]],
        last: list[HealthLast],
        now: float,
    ) -> None:
        """Work out the app's state and its answer after what probes found; write an
        event when either moved, then decide for the groups that use it."""
        before = watch.state
        state = self._app_state(watch, now)
        down = self._down_addresses(watch, now)
        if state == before and not moved and down == watch.down:
            return
        if state != before:
            watch.state, watch.since = state, now
        self._metrics.app_state(watch.app.name, state)
        change = await asyncio.to_thread(
            self._store.record_health,
            watch.id,
            before={"state": before, "down": list(watch.down)},
            after={"state": state, "down": list(down), "addresses": moved},
            down=down if down != watch.down else None,
            last=last,
            reason=self._health_reason(watch, before, state, moved),
        )
        watch.down = down
        if change is not None and state != before:
            log.info("app_health_changed", app=watch.app.name, before=before, after=state)
            await self._decide_all(now, only_app=watch.app.name)

    def _health_reason(
        self, watch: AppWatch, before: HealthState, state: HealthState, moved: list[dict[str, Any]]
    ) -> str:
        parts = [
            f"{item['address']} {item['from']} -> {item['to']}"
            + (f" ({item['evidence'].get('error')})" if item["evidence"].get("error") else "")
            for item in moved
        ]
        head = (
            f"{watch.app.name} {before} -> {state}"
            if state != before
            else f"{watch.app.name} {state}"
        )
        return "; ".join([head, *parts])[:1000]

    def _probe_views(self, watch: AppWatch, now: float) -> dict[str, ProbeView]:
        """Each probe's view of the app: fodns's own, and each remote probe's that
        reported on it (an aged-out probe is passed on for quorum_state to leave out)."""
        local = app_state([w.verdict.state for w in watch.addresses.values()], watch.min_healthy())
        views = {LOCAL_PROBE: ProbeView(local, now, watch.spec.interval, local=True)}
        for name, probe in self._probes.items():
            states = [w.reported[name][0] for w in watch.addresses.values() if name in w.reported]
            if states:
                seen = app_state(states, watch.min_healthy())
                views[name] = ProbeView(seen, probe.reported_at, probe.interval)
        return views

    def _app_state(self, watch: AppWatch, now: float) -> HealthState:
        if not watch.addresses:
            return "unknown"
        return quorum_state(self._probe_views(watch, now), watch.spec.quorum, now)

    def _down_addresses(self, watch: AppWatch, now: float) -> tuple[str, ...]:
        """The addresses the app's answer leaves out: those at least `quorum` live
        probes see down (only when its check says answers follow health)."""
        if not watch.spec.answers_follow_health:
            return ()
        down = []
        for address in watch.app.web_head:
            tracked = watch.addresses.get(address)
            if tracked is None:
                continue
            views = {
                LOCAL_PROBE: ProbeView(tracked.verdict.state, now, watch.spec.interval, local=True)
            }
            for name, (state, _) in tracked.reported.items():
                probe = self._probes.get(name)
                if probe is not None:
                    views[name] = ProbeView(state, probe.reported_at, probe.interval)
            if quorum_state(views, watch.spec.quorum, now) == "down":
                down.append(address)
        return tuple(down)

    # ---- decisions ------------------------------------------------------------------

    async def _housekeeping(self) -> None:
        now = time.time()
        self._last_decided = time.monotonic()
        ended = await asyncio.to_thread(self._store.end_pins, utc_from_epoch(now))
        if ended:
            await self._refresh()
        for watch in self._apps.values():
            if any(name in w.reported for w in watch.addresses.values() for name in self._probes):
                await self._settle(watch, [], [], now)  # a probe may have aged out
        await self._decide_all(now)

    async def _decide_all(self, now: float, only_app: str | None = None) -> None:
        by_name = {watch.app.name: watch for watch in self._apps.values()}
        for group in self._groups:
            if only_app is not None and only_app not in (group.primary, group.backup):
                continue
            key = (group.zone, group.label)
            times = await self._recent_switches(key, now)
            decision = decide(
                active=group.active,
                sides={side: self._side_health(group.app_on(side), by_name) for side in SIDES},
                policy=Policy(
                    group.failover, group.failback, group.hold_down, group.max_auto_switches
                ),
                pin=None
                if group.pin is None
                else _pin(group.pin.side, group.pin.until, group.pin.reason),
                auto_switch_times=times,
                now=now,
            )
            previous = self._decisions.get(key)
            self._decisions[key] = decision
            if decision.state == "switch" and decision.to is not None:
                await self._switch(group, decision, now)
            elif decision.state in ("held", "both_down", "no_target") and (
                previous is None or previous.state != decision.state
            ):
                log.warning(
                    "group_not_switched",
                    group=group.fqdn,
                    state=decision.state,
                    reason=decision.reason,
                )

    def _side_health(self, name: str | None, by_name: Mapping[str, AppWatch]) -> SideHealth:
        watch = None if name is None else by_name.get(name)
        if watch is None:
            return SideHealth(
                name, False, "unknown", None, f"{name} has no check" if name else "no app"
            )
        return SideHealth(name, True, watch.state, watch.up_since, watch.evidence())

    async def _recent_switches(self, key: tuple[str, str], now: float) -> list[float]:
        times = self._switch_times.get(key)
        if times is None:
            stored = await asyncio.to_thread(
                self._store.auto_switch_times, key[0], key[1], utc_from_epoch(now - HOUR)
            )
            times = self._switch_times[key] = [epoch(at) for at in stored]
        times[:] = [at for at in times if at > now - HOUR]
        return list(times)

    async def _switch(self, group: Group, decision: Decision, now: float) -> None:
        assert decision.to is not None
        change = await asyncio.to_thread(
            self._store.auto_switch,
            group.label,
            group.zone,
            decision.to,
            decision.reason,
            expected_active=group.active,
        )
        if change is None:
            return  # a person or another change got there first: decided again next tick
        self._switch_times.setdefault((group.zone, group.label), []).append(now)
        self._metrics.auto_switches.inc()
        log.warning(
            "group_switched_by_health", group=group.fqdn, to=decision.to, reason=decision.reason
        )
        self._seen_seq = -1  # read the groups again: this one moved
        await self._refresh()

    # ---- remote probes --------------------------------------------------------------

    async def report(
        self, probe: str, interval: float, apps: Sequence[Mapping[str, Any]]
    ) -> dict[str, Any]:
        """A remote probe's report: per app, each address's state as the probe's own
        rise/fall found it, with the evidence. Apps fodns does not check are named
        back as `unknown_apps` (the probe's list is older than fodns's)."""
        if probe == LOCAL_PROBE:
            raise Invalid("name", f"{LOCAL_PROBE!r} is fodns's own probe")
        now = time.time()
        self._probes[probe] = RemoteProbe(probe, interval, now)
        by_name = {watch.app.name: watch for watch in self._apps.values()}
        unknown: list[str] = []
        touched: list[AppWatch] = []
        for item in apps:
            watch = by_name.get(str(item["app"]))
            if watch is None:
                unknown.append(str(item["app"]))
                continue
            for entry in item["addresses"]:
                tracked = watch.addresses.get(str(entry["address"]))
                if tracked is None and str(entry["address"]) not in watch.app.web_head:
                    continue  # not an address of this app (a hostname fodns resolved elsewhere)
                if tracked is None:
                    tracked = AddressWatch(
                        str(entry["address"]),
                        None,
                        AddressVerdict(watch.spec.fall, watch.spec.rise),
                    )
                    watch.addresses[tracked.address] = tracked
                tracked.reported[probe] = (entry["state"], dict(entry.get("evidence") or {}))
            touched.append(watch)
        for watch in touched:
            await self._settle(watch, [], [], now)
        return {"probe": probe, "accepted": len(touched), "unknown_apps": unknown}

    # ---- what /v1/health and /healthz show -------------------------------------------

    def state(self) -> dict[str, Any]:
        """For /healthz: whether the check process runs and still sends rounds (stale:
        nothing for three of the longest intervals, and 5 s more)."""
        silent = time.monotonic() - self._last_result
        longest = max((watch.spec.interval for watch in self._apps.values()), default=0.0)
        running = self._process is not None and self._process.returncode is None
        return {
            "apps_checked": len(self._apps),
            "process_running": running,
            "process_pid": self._process.pid if running and self._process else None,
            "last_result_seconds_ago": round(silent, 3),
            "stale": bool(self._apps) and silent > 3 * longest + 5.0,
        }

    def health_json(self, last_known: Sequence[tuple[str, HealthLast]]) -> dict[str, Any]:
        now = time.time()
        known: dict[str, list[dict[str, Any]]] = {}
        for name, entry in last_known:
            known.setdefault(name, []).append(entry.to_json())
        apps = []
        for watch in sorted(self._apps.values(), key=lambda w: w.app.name):
            apps.append(
                {
                    "app": watch.app.name,
                    "state": watch.state,
                    "since": None if watch.since is None else utc_from_epoch(watch.since),
                    "check": watch.spec.to_json(),
                    "web_head": list(watch.app.web_head),
                    "down": list(watch.down),
                    "addresses": [
                        {
                            "address": tracked.address,
                            "hostname": tracked.hostname,
                            "probes": {
                                LOCAL_PROBE: tracked.local_json(),
                                **{
                                    name: {"state": state, "evidence": evidence}
                                    for name, (state, evidence) in tracked.reported.items()
                                },
                            },
                        }
                        for tracked in watch.addresses.values()
                    ],
                    "last_known": known.get(watch.app.name, []),
                }
            )
        groups = []
        for group in self._groups:
            decision = self._decisions.get((group.zone, group.label))
            groups.append(
                {
                    "fqdn": group.fqdn,
                    "zone": group.zone,
                    "label": group.label,
                    "active": group.active,
                    "failover": group.failover,
                    "failback": group.failback,
                    "state": "unknown" if decision is None else decision.state,
                    "reason": None if decision is None else decision.reason,
                    "held_until": None
                    if decision is None or decision.held_until is None
                    else utc_from_epoch(decision.held_until),
                }
            )
        probes = [{"name": LOCAL_PROBE, "live": True, "interval": None, "last_report_at": None}]
        probes += [
            {
                "name": probe.name,
                "live": probe.live(now),
                "interval": probe.interval,
                "last_report_at": utc_from_epoch(probe.reported_at),
            }
            for probe in sorted(self._probes.values(), key=lambda p: p.name)
        ]
        return {
            "started_at": utc_from_epoch(self._started),
            "probes": probes,
            "apps": apps,
            "groups": groups,
        }


def _pin(side: Side, until: str | None, reason: str | None) -> Pin:
    return Pin(side, None if until is None else epoch(until), reason)
