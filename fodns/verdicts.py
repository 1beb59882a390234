"""Health verdicts and failover decisions: every rule, none of the I/O.

From the bottom up: an address's checks make it `up` or `down` (AddressVerdict:
`fall` failures in a row take it down, `rise` successes in a row bring it up); an
app's addresses make it up or down as one probe sees it (app_state, by
`min_healthy`); the probes that still report make it up or down for decisions
(quorum_state, by `quorum`; a remote probe silent for 3 of its intervals no longer
counts). decide() then says where a group should be, by layers, highest first:

1. a person's pin, while it lasts: the group stays where the person put it;
2. health, for a group whose failover is automatic: leave an active side that is
   down for the other side if that one is up (never for a side that is down or
   unknown: unknown never moves traffic), and fail back to the primary once it has
   been up for the group's hold-down, if failback is automatic; at most
   `max_auto_switches` automatic switches in a rolling hour;
3. where the group already is.

Everything here is a value in and a value out: time is passed in as `now` (seconds
since the epoch), so the callers (the checker, the API, the tests) decide when.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from fodns.model import Side

HealthState = Literal["unknown", "up", "down"]
DecisionState = Literal[
    "manual", "pinned", "ok", "waiting", "switch", "held", "both_down", "no_target"
]
FailoverMode = Literal["manual", "auto"]

# A remote probe counts while its last report is younger than this many of its own
# reporting intervals: one or two lost reports are forgiven, a dead probe is not.
PROBE_SILENCE_INTERVALS = 3
# Defaults of a group's failover policy, and why: 5 minutes of a primary being up
# before traffic goes back keeps a flapping primary from taking it twice; 4
# automatic switches an hour is two round trips, after which a person should look.
DEFAULT_HOLD_DOWN = 300.0
DEFAULT_MAX_AUTO_SWITCHES = 4
# The window the automatic switches are counted in, in seconds.
SWITCH_WINDOW = 3600.0


@dataclass
class AddressVerdict:
    """The verdict on one address of one app as one probe sees it, and the runs of
    checks it comes from. Fresh (unknown) at every start of the checker."""

    fall: int
    rise: int
    state: HealthState = "unknown"
    failures: int = 0  # failed checks in a row, up to now
    successes: int = 0  # successful checks in a row, up to now
    since: float | None = None  # when `state` was reached; None while unknown
    last_failure: str | None = None  # what the last failed check said

    def record(self, ok: bool, now: float, detail: str | None = None) -> HealthState | None:
        """Count one check's outcome (`detail`: what a failed check said); the new
        state when this check changes it, else None. A success ends a run of
        failures and a failure ends a run of successes, so an address failing every
        other check never reaches `fall` (nor `rise`)."""
        if ok:
            self.successes += 1
            self.failures = 0
            reached: HealthState | None = "up" if self.successes >= self.rise else None
        else:
            self.failures += 1
            self.successes = 0
            self.last_failure = detail
            reached = "down" if self.failures >= self.fall else None
        if reached is None or reached == self.state:
            return None
        self.state = reached
        self.since = now
        return reached

    def evidence(self, address: str) -> str:
        """What a person reads about a failing address: '192.0.2.10: connection
        refused (3 checks)', the count being the failed checks in a row."""
        what = self.last_failure or "check failed"
        checks = "1 check" if self.failures == 1 else f"{self.failures} checks"
        return f"{address}: {what} ({checks})"


def down_evidence(verdicts: Mapping[str, AddressVerdict]) -> str:
    """The evidence of an app's addresses that are down, in address order, '; '
    between them: what decide()'s reasons quote in parentheses."""
    return "; ".join(
        verdict.evidence(address)
        for address, verdict in sorted(verdicts.items())
        if verdict.state == "down"
    )


@dataclass
class StateSince:
    """A state and when it was reached: an app's state as it changes from one
    check round to the next, for SideHealth.up_since (failback waits on it)."""

    state: HealthState = "unknown"
    since: float | None = None

    def observe(self, state: HealthState, now: float) -> HealthState | None:
        """Take this round's state; the new state if it changed, else None."""
        if state == self.state:
            return None
        self.state = state
        self.since = now
        return state

    @property
    def up_since(self) -> float | None:
        return self.since if self.state == "up" else None


def app_state(address_states: Iterable[HealthState], min_healthy: int) -> HealthState:
    """An app as one probe sees it: up while at least `min_healthy` of its addresses
    are up; down once so many are down that `min_healthy` cannot be reached by the
    rest (up + unknown < min_healthy); else unknown.

    No addresses at all gives unknown, not down: there is no evidence to act on. An
    app whose hostname does not resolve is checked as one pseudo-address whose
    checks fail, so it goes down after `fall` of them like any address."""
    counts = {"unknown": 0, "up": 0, "down": 0}
    for state in address_states:
        counts[state] += 1
    if sum(counts.values()) == 0:
        return "unknown"
    if counts["up"] >= min_healthy:
        return "up"
    if counts["up"] + counts["unknown"] < min_healthy:
        return "down"
    return "unknown"


@dataclass(frozen=True)
class ProbeView:
    """One probe's state of one app and when it said so. `interval` is the probe's
    reporting interval; the local probe (fodns itself) is always live."""

    state: HealthState
    reported_at: float
    interval: float
    local: bool = False

    def live(self, now: float) -> bool:
        return self.local or now - self.reported_at < PROBE_SILENCE_INTERVALS * self.interval


def live_probes(views: Mapping[str, ProbeView], now: float) -> dict[str, ProbeView]:
    """The probes that count at `now`, by name."""
    return {name: view for name, view in views.items() if view.live(now)}


def probes_seeing(views: Mapping[str, ProbeView], state: HealthState, now: float) -> list[str]:
    """The names of the live probes that see `state`, sorted: for reasons."""
    return sorted(name for name, view in live_probes(views, now).items() if view.state == state)


def quorum_state(views: Mapping[str, ProbeView], quorum: int, now: float) -> HealthState:
    """An app for decisions: down when at least `quorum` live probes see it down; up
    when at least `quorum` see it up (and fewer than `quorum` down, which down
    being looked at first ensures); else unknown. Probes aged out do not count, so
    too few live probes make the app unknown, which moves nothing."""
    live = live_probes(views, now).values()
    if sum(view.state == "down" for view in live) >= quorum:
        return "down"
    if sum(view.state == "up" for view in live) >= quorum:
        return "up"
    return "unknown"


@dataclass(frozen=True)
class SideHealth:
    """One side of a group for decide(): its app (None: the side has none), whether
    that app has a check, its quorum state, since when it has been up (None unless
    up), and the evidence a person reads when it is down."""

    app: str | None
    checked: bool
    state: HealthState
    up_since: float | None = None
    evidence: str = ""


NO_APP = SideHealth(app=None, checked=False, state="unknown")


@dataclass(frozen=True)
class Policy:
    """A group's failover policy. A group whose failover is manual never moves by
    itself, whatever its failback says: failback is the way back of automatic
    failover."""

    failover: FailoverMode = "manual"
    failback: FailoverMode = "manual"
    hold_down: float = DEFAULT_HOLD_DOWN
    max_auto_switches: int = DEFAULT_MAX_AUTO_SWITCHES


@dataclass(frozen=True)
class Pin:
    """A person's pin of a group to a side, until a time (None: until unpinned)."""

    side: Side
    until: float | None
    reason: str | None = None

    def active(self, now: float) -> bool:
        return self.until is None or self.until > now


@dataclass(frozen=True)
class Decision:
    """What decide() says. `to` is the side to move the group to, None to stay: it
    is set for "switch" (an automatic switch, which counts against the hourly
    limit) and for "pinned" when the pin names the other side (a person's act,
    which does not). `held_until`: when a held switch may happen (state "held");
    `failback_at`: when a pending failback is due (state "waiting")."""

    state: DecisionState
    to: Side | None
    reason: str
    held_until: float | None = None
    failback_at: float | None = None


def decide(
    *,
    active: Side,
    sides: Mapping[Side, SideHealth],
    policy: Policy,
    pin: Pin | None,
    auto_switch_times: Sequence[float],
    now: float,
) -> Decision:
    """Where a group should be at `now`, and why, in words for the event log (see the
    module's docstring for the layers). `sides` lacking a side means it has no
    app; `auto_switch_times` are the times of the group's automatic switches (any
    age, any order)."""
    other: Side = "backup" if active == "primary" else "primary"
    current = sides.get(active, NO_APP)
    alternative = sides.get(other, NO_APP)

    if pin is not None and pin.active(now):
        return _pinned(pin, active)
    if policy.failover != "auto":
        return Decision(
            "manual",
            None,
            f"failover is manual: {_health(active, current)}; a person switches this group",
        )

    if _is(current, "down"):
        lead = f"{_health(active, current)} and {_health(other, alternative)}"
        if _is(alternative, "up"):
            return _switch(other, lead, policy, auto_switch_times, now)
        if _is(alternative, "down"):
            return Decision("both_down", None, f"{lead}: both sides are down, staying on {active}")
        return Decision("no_target", None, f"{lead}: nowhere to go, staying on {active}")

    if active == "backup" and policy.failback == "auto":
        primary = alternative
        if _is(primary, "up") and primary.up_since is not None:
            due = primary.up_since + policy.hold_down
            lead = (
                f"{_health(active, current)} and primary {primary.app} has been up "
                f"since {_clock(primary.up_since)}"
            )
            hold_down = f"the {policy.hold_down:g} s hold-down"
            if due <= now:
                return _switch(
                    "primary", f"{lead}, past {hold_down}", policy, auto_switch_times, now
                )
            return Decision(
                "waiting",
                None,
                f"{lead}: failing back at {_clock(due, ceil=True)}, after {hold_down}",
                failback_at=due,
            )
        return Decision(
            "ok",
            None,
            f"{_health(active, current)} and {_health(other, primary)}: "
            f"failback waits for the primary to be up for {policy.hold_down:g} s",
        )

    return Decision("ok", None, f"{_health(active, current)}: staying on {active}")


def _pinned(pin: Pin, active: Side) -> Decision:
    until = "until unpinned" if pin.until is None else f"until {_clock(pin.until, ceil=True)}"
    why = f" ({pin.reason})" if pin.reason else ""
    if pin.side == active:
        return Decision("pinned", None, f"pinned to {pin.side} {until}{why}")
    return Decision("pinned", pin.side, f"pinned to {pin.side} {until}{why}: moving to {pin.side}")


def _switch(
    to: Side, lead: str, policy: Policy, auto_switch_times: Sequence[float], now: float
) -> Decision:
    """A switch to `to`, or "held" when the group has used up its automatic switches
    for the hour. The window is half-open, (now - 1 h, now]: a switch exactly an hour
    old no longer counts, so `held_until` is the moment the next switch is allowed."""
    recent = sorted(t for t in auto_switch_times if now - t < SWITCH_WINDOW)
    limit = policy.max_auto_switches
    if len(recent) < limit:
        return Decision("switch", to, f"{lead}: switched to {to}")
    switches = "1 automatic switch" if len(recent) == 1 else f"{len(recent)} automatic switches"
    if limit <= 0:
        # No automatic switch is ever allowed: only a person moves this group.
        return Decision(
            "held",
            None,
            f"{lead}: would switch to {to}, but automatic switches are limited to "
            f"{limit} an hour; held until a person acts",
        )
    # The switch is allowed once enough of the oldest recent switches leave the window
    # that fewer than `limit` remain.
    held_until = recent[len(recent) - limit] + SWITCH_WINDOW
    return Decision(
        "held",
        None,
        f"{lead}: would switch to {to}, but {switches} in the last hour; "
        f"held until {_clock(held_until, ceil=True)} or a person acts",
        held_until=held_until,
    )


def _is(side: SideHealth, state: HealthState) -> bool:
    """Whether a side is known to be in `state`: only a checked app is ever up or
    down for decisions."""
    return side.app is not None and side.checked and side.state == state


def _health(side: Side, health: SideHealth) -> str:
    """A side's health in words: 'primary shop-eu is down (192.0.2.10: connection
    refused (3 checks))'."""
    if health.app is None:
        return f"the group has no {side} app"
    name = f"{side} {health.app}"
    if not health.checked:
        return f"{name} has no health check"
    if health.state == "down":
        return f"{name} is down ({health.evidence})" if health.evidence else f"{name} is down"
    if health.state == "up":
        return f"{name} is up"
    return f"{name}'s health is unknown"


def _clock(seconds: float, *, ceil: bool = False) -> str:
    """A time of day for reasons, in UTC, to the minute: 'HH:MM UTC'. With `ceil`,
    rounded up, so that a time things are held until is not shown before it."""
    if ceil:
        seconds = math.ceil(seconds / 60) * 60
    return datetime.fromtimestamp(seconds, tz=UTC).strftime("%H:%M UTC")
