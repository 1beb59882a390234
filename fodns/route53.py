"""The Route53 mirror: a hosted zone per fodns zone kept equal to the groups' answers.

It follows the change log like every other consumer. A thread (boto3 blocks;
neither DNS nor the API ever waits for it) reads the events after each zone's
cursor, takes the state now of the groups they touched, and sends the difference
from what Route53 holds as CREATEs, UPSERTs and DELETEs, batched within Route53's
limits, one batch at a time per zone, each waited on until GetChange says
INSYNC. Only then do the mirror's records and its cursor move, in the database,
so a crash or an outage replays the events: nothing is lost. Failures are
retried with exponential backoff and full jitter, per zone: one hosted zone that
fails never holds up another.

What fodns owns in a hosted zone is what it wrote itself: the record sets it
remembers holding there (route53_records; when one of them was edited behind
fodns's back, it is set right) and any record set whose exact value it once
sent (route53_written, written before each batch goes out). Everything else is
someone else's and is never changed or deleted. A full sync (at start, on
demand, after every failure, and every `full_sync_interval`) lists the hosted
zone and compares: a record set fodns wants where someone else's records are in
the way is a conflict (reported, left alone), and every label below the apex
that holds someone else's records is reserved, so the API refuses it to new
groups. A new record set goes out as a CREATE, which Route53 refuses if someone
else's record set appeared there since: the refusal brings a full sync.

A record set that can never fit in one request (see `unfit_reason`) is skipped
and reported, and the rest of the zone is mirrored as usual.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import random
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future, InvalidStateError
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from fodns.config import Route53Config, ZoneConfig
from fodns.errors import FodnsError
from fodns.feed import SAFETY_POLL_INTERVAL
from fodns.logs import get_logger
from fodns.mirrorstate import FAILED, RECOVERED, MirrorKey, MirrorState, MirrorValue
from fodns.model import FODNS_ACTOR, App, Group
from fodns.records import group_answer
from fodns.store import RESERVED_BY_ROUTE53, Store

log = get_logger()
T = TypeVar("T")
OWNED_TYPES = frozenset({"A", "AAAA", "CNAME"})
# ChangeResourceRecordSets limits (Route53's quotas page, "Maximums on API requests"):
# ResourceRecord elements and characters of Value elements per request, an UPSERT
# counting twice for both; and at most 4,000 characters in one Value (the API
# reference's ResourceRecord).
BATCH_MAX_RECORDS = 1000
BATCH_MAX_CHARACTERS = 32_000
VALUE_MAX_CHARACTERS = 4000
UPSERT_WEIGHT = 2
INSYNC_POLL_FIRST = 0.2
INSYNC_POLL_MAX = 5.0
INSYNC_TIMEOUT = 300.0  # Route53 documents INSYNC within 60 s
BACKOFF_FIRST = 0.5
BACKOFF_MAX = 20.0
# What Route53 answers a change batch it will not take (as opposed to a failure of
# the service): in a full sync, the batch is halved to find the change at fault.
REFUSAL_CODES = frozenset({"InvalidChangeBatch", "InvalidInput"})
REFUSALS_MAX = 20  # refused changes one full sync isolates before it fails instead
# Failed attempts in a row after which the log says the mirror fails a zone (an event,
# route53_failed, and once it works again route53_recovered): one per transition, never
# per retry, and not for a single throttled call that the next retry gets through.
FAILING_AFTER = 3
LIST_PAGES_MAX = 10_000  # a hosted zone holds 10,000 record sets by default, 300 a page
OCTAL_ESCAPE = re.compile(r"\\([0-7]{3})")
# Keys of a record set that fodns never writes: alias, routing policies, traffic flow.
NOT_SIMPLE = ("AliasTarget", "SetIdentifier", "TrafficPolicyInstanceId")


@dataclass(frozen=True)
class Listed:
    """One record set of a hosted zone as ListResourceRecordSets gives it; `value` is
    None for one fodns could never have written (alias, routing policy)."""

    name: str  # lowercase, unescaped, with the final dot
    type: str
    value: MirrorValue | None


@dataclass(frozen=True)
class Plan:
    """The differences between fodns's records and a hosted zone's, for one zone, and
    what is left alone: record sets too big for Route53 (`skipped`: the value wanted and
    why) and record sets others' records are in the way of (`conflicts`: their types)."""

    zone: str
    hosted_zone_id: str
    add: dict[MirrorKey, MirrorValue] = field(default_factory=dict)
    change: dict[MirrorKey, tuple[MirrorValue, MirrorValue]] = field(default_factory=dict)
    remove: dict[MirrorKey, MirrorValue] = field(default_factory=dict)
    unchanged: int = 0
    skipped: dict[MirrorKey, tuple[MirrorValue, str]] = field(default_factory=dict)
    conflicts: dict[MirrorKey, tuple[str, ...]] = field(default_factory=dict)
    held: dict[MirrorKey, MirrorValue] = field(default_factory=dict)  # fodns's, before

    @property
    def empty(self) -> bool:
        return not (self.add or self.change or self.remove)

    def after(self) -> dict[MirrorKey, MirrorValue]:
        """The record sets fodns holds in the hosted zone once the plan is applied."""
        result = {key: value for key, value in self.held.items() if key not in self.remove}
        result.update(self.add)
        result.update({key: new for key, (_, new) in self.change.items()})
        return result

    def changes(self) -> list[dict[str, Any]]:
        """Route53 Change elements: CREATE for added (Route53 refuses it if a record set
        is there after all, so someone else's is never overwritten), UPSERT for changed,
        DELETE (with the exact TTL and values) for removed. Name by name, DELETE first: a
        switch from addresses to a hostname removes the A records before the CNAME
        arrives, which may not share its name with them (RFC 1034 §3.6.2)."""
        actions = [(k, 0, "DELETE", v) for k, v in self.remove.items()]
        actions += [(k, 1, "CREATE", v) for k, v in self.add.items()]
        actions += [(k, 1, "UPSERT", new) for k, (_, new) in self.change.items()]
        actions.sort(key=lambda action: (action[0][0], action[1], action[0][1]))
        return [_change(action, key, value) for key, _, action, value in actions]

    def to_json(self) -> dict[str, Any]:
        def record(key: MirrorKey, value: MirrorValue) -> dict[str, Any]:
            return {"name": key[0], "type": key[1], "ttl": value[0], "values": list(value[1])}

        return {
            "zone": self.zone,
            "hosted_zone_id": self.hosted_zone_id,
            "add": [record(k, v) for k, v in sorted(self.add.items())],
            "change": [
                {"before": record(k, old), "after": record(k, new)}
                for k, (old, new) in sorted(self.change.items())
            ],
            "remove": [record(k, v) for k, v in sorted(self.remove.items())],
            "unchanged": self.unchanged,
            "skipped": skipped_json(self.skipped),
            "conflicts": conflicts_json(self.conflicts),
        }


def skipped_json(skipped: Mapping[MirrorKey, tuple[MirrorValue, str]]) -> list[dict[str, Any]]:
    return [
        {"name": key[0], "type": key[1], "values": len(value[1]), "reason": why}
        for key, (value, why) in sorted(skipped.items())
    ]


def conflicts_json(conflicts: Mapping[MirrorKey, tuple[str, ...]]) -> list[dict[str, Any]]:
    return [
        {"name": key[0], "type": key[1], "held_by": list(theirs)}
        for key, theirs in sorted(conflicts.items())
    ]


def diff(
    zone: str,
    hosted_zone_id: str,
    wanted: Mapping[MirrorKey, MirrorValue],
    present: Mapping[MirrorKey, MirrorValue],
    keys: Iterable[MirrorKey] | None = None,
) -> Plan:
    """What turns `present` into `wanted` over `keys` (default: every key of both)."""
    add: dict[MirrorKey, MirrorValue] = {}
    change: dict[MirrorKey, tuple[MirrorValue, MirrorValue]] = {}
    remove: dict[MirrorKey, MirrorValue] = {}
    unchanged = 0
    for key in set(wanted) | set(present) if keys is None else keys:
        new, old = wanted.get(key), present.get(key)
        if new == old:
            unchanged += new is not None
        elif old is None and new is not None:
            add[key] = new
        elif new is None and old is not None:
            remove[key] = old
        elif old is not None and new is not None:
            change[key] = (old, new)
    return Plan(zone, hosted_zone_id, add, change, remove, unchanged, held=dict(present))


def plan(
    zone: str,
    hosted_zone_id: str,
    wanted: Mapping[MirrorKey, MirrorValue],
    held: Mapping[MirrorKey, MirrorValue],
    keys: Iterable[MirrorKey] | None = None,
    foreign: Mapping[str, frozenset[str]] | None = None,
) -> Plan:
    """The differences between `wanted` and `held` (fodns's record sets in Route53) over
    `keys` (default: all), leaving alone the record sets Route53 cannot take and those
    that `foreign` (name -> types of record sets fodns did not write) is in the way of."""
    skipped: dict[MirrorKey, tuple[MirrorValue, str]] = {}
    conflicts: dict[MirrorKey, tuple[str, ...]] = {}
    scope = set(wanted) | set(held) if keys is None else set(keys)
    for key in scope & set(wanted):
        theirs = in_the_way(key, foreign or {})
        why = unfit_reason(wanted[key])
        if theirs:
            conflicts[key] = theirs
        elif why is not None:
            skipped[key] = (wanted[key], why)
    result = diff(zone, hosted_zone_id, wanted, held, scope - set(skipped) - set(conflicts))
    return Plan(
        zone,
        hosted_zone_id,
        result.add,
        result.change,
        result.remove,
        result.unchanged,
        skipped,
        conflicts,
        dict(held),
    )


def in_the_way(key: MirrorKey, foreign: Mapping[str, frozenset[str]]) -> tuple[str, ...]:
    """The types of others' record sets that keep fodns from writing `key`: one of the
    same type, or any at all where a CNAME is involved (RFC 1034 §3.6.2: a CNAME
    shares its name with nothing). Empty when nothing is in the way."""
    name, kind = key
    theirs = foreign.get(name, frozenset())
    if kind in theirs or (theirs and (kind == "CNAME" or "CNAME" in theirs)):
        return tuple(sorted(theirs))
    return ()


def unfit_reason(value: MirrorValue) -> str | None:
    """Why a record set can never be sent in one request, or None if it can. Judged as
    an UPSERT (it counts twice), which every later change of the record set needs."""
    values = value[1]
    longest = max((len(v) for v in values), default=0)
    records = UPSERT_WEIGHT * len(values)
    characters = UPSERT_WEIGHT * sum(len(v) for v in values)
    if longest > VALUE_MAX_CHARACTERS:
        return f"a value is {longest} characters, Route53 takes {VALUE_MAX_CHARACTERS}"
    if records > BATCH_MAX_RECORDS:
        return (
            f"an UPSERT of it is {records} records, Route53 takes {BATCH_MAX_RECORDS} per request"
        )
    if characters > BATCH_MAX_CHARACTERS:
        return (
            f"an UPSERT of it is {characters} characters,"
            f" Route53 takes {BATCH_MAX_CHARACTERS} per request"
        )
    return None


def ownership(
    zone: str,
    listed: Iterable[Listed],
    remembered: Mapping[MirrorKey, MirrorValue],
    wrote: Callable[[MirrorKey, MirrorValue], bool],
) -> tuple[dict[MirrorKey, MirrorValue], dict[str, frozenset[str]]]:
    """Whose each listed record set is: fodns's (name and type it remembers holding,
    whatever the value now, or a value it once wrote) as {key: value}, and everyone
    else's as {name: types}."""
    apex = f"{zone}."
    held: dict[MirrorKey, MirrorValue] = {}
    foreign: dict[str, set[str]] = {}
    for rrset in listed:
        key, value = (rrset.name, rrset.type), rrset.value
        # Only a plain A, AAAA or CNAME below the apex can be fodns's at all.
        if (
            value is not None
            and rrset.type in OWNED_TYPES
            and rrset.name.endswith(f".{apex}")
            and (key in remembered or wrote(key, value))
        ):
            held[key] = value
        else:
            foreign.setdefault(rrset.name, set()).add(rrset.type)
    return held, {name: frozenset(types) for name, types in foreign.items()}


def reserved_labels(zone: str, foreign: Iterable[str]) -> set[str]:
    """The labels just below the apex that hold others' records (their names or names
    under them): a group there would be in their way, or they in its."""
    suffix = f".{zone}."
    return {name[: -len(suffix)].rsplit(".", 1)[-1] for name in foreign if name.endswith(suffix)}


def group_records(group: Group, apps: Mapping[str, App]) -> dict[MirrorKey, MirrorValue]:
    """The record sets a group answers with, as Route53 holds them."""
    answer = group_answer(group, apps)
    by_type: dict[str, list[str]] = {}
    for kind, data in answer.records:
        by_type.setdefault(kind, []).append(data)
    name = f"{answer.fqdn}."
    return {(name, kind): (group.ttl, tuple(sorted(values))) for kind, values in by_type.items()}


def change_weight(change: Mapping[str, Any]) -> tuple[int, int]:
    """(ResourceRecord elements, characters of values) a change counts for in a request."""
    values = [r["Value"] for r in change["ResourceRecordSet"]["ResourceRecords"]]
    weight = UPSERT_WEIGHT if change["Action"] == "UPSERT" else 1
    return weight * len(values), weight * sum(len(v) for v in values)


def batches(changes: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Changes cut into requests Route53 accepts (its limits count an UPSERT twice).
    A change too big for any request (`plan` keeps those out) goes alone."""
    result: list[list[dict[str, Any]]] = []
    batch: list[dict[str, Any]] = []
    records = characters = 0
    for change in changes:
        change_records, change_characters = change_weight(change)
        over = (
            records + change_records > BATCH_MAX_RECORDS
            or characters + change_characters > BATCH_MAX_CHARACTERS
        )
        if batch and over:
            result.append(batch)
            batch, records, characters = [], 0, 0
        batch.append(change)
        records += change_records
        characters += change_characters
    if batch:
        result.append(batch)
    return result


def _change(action: str, key: MirrorKey, value: MirrorValue) -> dict[str, Any]:
    return {
        "Action": action,
        "ResourceRecordSet": {
            "Name": key[0],
            "Type": key[1],
            "TTL": value[0],
            "ResourceRecords": [{"Value": v} for v in value[1]],
        },
    }


def make_client(config: Route53Config) -> Any:
    """A boto3 Route53 client, credentials found the boto3 way (environment, profile,
    instance role); no retries of its own, the mirror does them."""
    import boto3  # imported here: only deployments with [route53] pay for it
    from botocore.config import Config as BotoConfig

    session = boto3.session.Session(profile_name=config.profile)
    return session.client(
        "route53",
        region_name=config.region,
        endpoint_url=config.endpoint_url,
        config=BotoConfig(
            retries={"total_max_attempts": 1, "mode": "standard"},
            connect_timeout=5,
            read_timeout=config.call_timeout,
        ),
    )


class MirrorError(FodnsError):
    """A Route53 call failed; `kind` is its error code (or the exception's class). It
    reaches HTTP (plan, sync) as 502: Route53, upstream of fodns, failed."""

    status = 502
    code = "route53_error"

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


class MirrorRequestFailed(FodnsError):
    """A plan or sync asked through the API failed in Route53 (502: upstream failed)."""

    status = 502
    code = "route53_error"


class MirrorRequestTimeout(FodnsError):
    """A plan or sync asked through the API took longer than [route53] request_timeout
    (504); the mirror finishes it in the background."""

    status = 504
    code = "route53_timeout"


@dataclass
class ZoneStatus:
    """One zone's mirror: what /healthz and /metrics say of it, and its own retry state
    (a zone that fails backs off alone; the others go on)."""

    hosted_zone_id: str
    pending_events: int = 0
    lag_seconds: float = 0.0
    last_success: float | None = None  # time.time() of the last call that succeeded
    batches: int = 0
    full_syncs: int = 0
    needs_full_sync: bool = True
    errors: int = 0
    consecutive_failures: int = 0
    last_error: tuple[str, str, float] | None = None  # kind, message, time.time()
    retry_at: float = 0.0  # time.monotonic() before which the zone is left to rest
    skipped: dict[MirrorKey, tuple[MirrorValue, str]] = field(default_factory=dict)
    conflicts: dict[MirrorKey, tuple[str, ...]] = field(default_factory=dict)
    # Others' record sets in the hosted zone as of the last full sync, name -> types.
    foreign: dict[str, frozenset[str]] = field(default_factory=dict)

    def health(self, now: float, monotonic: float) -> dict[str, Any]:
        last_error = None
        if self.last_error is not None:
            kind, message, at = self.last_error
            last_error = {"kind": kind, "message": message, "seconds_ago": round(now - at, 3)}
        return {
            "hosted_zone_id": self.hosted_zone_id,
            "pending_events": self.pending_events,
            "lag_seconds": round(self.lag_seconds, 3),
            "last_success_seconds_ago": None
            if self.last_success is None
            else round(now - self.last_success, 3),
            "batches": self.batches,
            "full_syncs": self.full_syncs,
            "errors": self.errors,
            "consecutive_failures": self.consecutive_failures,
            "last_error": last_error,
            "retry_in_seconds": round(max(0.0, self.retry_at - monotonic), 3),
            "skipped_record_sets": skipped_json(self.skipped),
            "conflicts": conflicts_json(self.conflicts),
        }


class Route53Mirror:
    """Keeps each configured hosted zone equal to fodns's groups; runs on its own thread."""

    def __init__(
        self,
        store: Store,
        config: Route53Config,
        zones: list[ZoneConfig],
        client_factory: Callable[[Route53Config], Any] = make_client,
    ) -> None:
        self.store = store
        self.state = MirrorState(store)  # its own tables, through the store's hooks
        self.config = config
        self.hosted_zones = {
            z.name: z.route53_hosted_zone_id for z in zones if z.route53_hosted_zone_id
        }
        self.status = {zone: ZoneStatus(hz) for zone, hz in self.hosted_zones.items()}
        self.errors: dict[str, int] = {}
        self._client_factory = client_factory
        self._client: Any = None
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._requests: list[tuple[str, Future[list[Plan]]]] = []
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="route53-mirror", daemon=True)
        # (zone, key, what) already logged as skipped or in conflict: logged once each.
        self._reported: set[tuple[str, MirrorKey, str]] = set()
        # The zones the log last said it fails (read from the log on the thread's first
        # pass, so a restart carries on where the log left off).
        self._failing: set[str] | None = None

    # ---- called from other threads ----

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stopping.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def alive(self) -> bool:
        """Whether the mirror's thread still runs."""
        return self._thread.is_alive()

    def changed(self) -> None:
        """A change was committed: look at the log now rather than at the next poll."""
        self._wake.set()

    def request(self, kind: str) -> Future[list[Plan]]:
        """ "plan": every zone's differences, changing nothing; "sync": a full sync now.
        Run on the mirror's thread, so a sync never overlaps the mirror's own batches.
        The caller may cancel or abandon the future: the thread never minds."""
        future: Future[list[Plan]] = Future()
        with self._lock:
            self._requests.append((kind, future))
        self._wake.set()
        return future

    async def answer(self, kind: str) -> list[dict[str, Any]]:
        """`request(kind)` as the admin API answers it: each zone's plan as JSON, within
        [route53] request_timeout (a plan lists every record set, a sync may send many
        batches). Raises MirrorRequestFailed when Route53 fails, MirrorRequestTimeout
        when it is slower than that."""
        timeout = self.config.request_timeout
        # shield: on timeout the request is abandoned, not cancelled under the mirror's
        # thread, which answers it when it can (and must never die doing so).
        future = asyncio.wrap_future(self.request(kind))
        # An abandoned answer that is an error must not be logged as never retrieved.
        future.add_done_callback(lambda done: done.cancelled() or done.exception())
        try:
            plans = await asyncio.wait_for(asyncio.shield(future), timeout)
        except TimeoutError:
            raise MirrorRequestTimeout(
                f"Route53 did not answer in {timeout} s ([route53] request_timeout);"
                " the mirror finishes the work in the background"
            ) from None
        except MirrorError as error:
            raise MirrorRequestFailed(f"Route53: {error.kind}: {error}") from None
        return [plan.to_json() for plan in plans]

    def health(self) -> dict[str, Any]:
        now, monotonic = time.time(), time.monotonic()
        return {
            "zones": {zone: s.health(now, monotonic) for zone, s in self.status.items()},
            "errors": dict(self.errors),
        }

    # ---- the mirror's thread ----

    def _run(self) -> None:
        """Until stopped: answer plan and sync requests, then bring each zone that is not
        backing off up to date with the log. Nothing that goes wrong ends the thread."""
        while not self._stopping.is_set():
            self._wake.wait(SAFETY_POLL_INTERVAL)  # the log without a wake-up
            self._wake.clear()
            if self._stopping.is_set():
                break
            try:
                self._answer_requests()
                for zone in self.hosted_zones:
                    if self._stopping.is_set():
                        break
                    if time.monotonic() >= self.status[zone].retry_at:
                        self._tell(zone, self._attempt(zone, self._follow))
            except Exception:  # a fault of fodns's own: say so, rest a moment, go on
                log.exception("route53_unexpected_error")
                self._stopping.wait(BACKOFF_FIRST)

    def _attempt(self, zone: str, work: Callable[[str], object]) -> BaseException | None:
        """Run `work(zone)`; a failure backs that zone off (and only that zone)."""
        try:
            work(zone)
        except Exception as error:
            self._failed(zone, error)
            return error
        self.status[zone].consecutive_failures = 0
        return None

    def _tell(self, zone: str, error: BaseException | None) -> None:
        """Say in the log when following a zone has failed FAILING_AFTER times in a row,
        and when it works again after that: an event each, once per transition. Written
        on this thread; a write that fails is tried again at the next pass."""
        if self._failing is None:
            self._failing = self.state.failing(list(self.hosted_zones))
        status = self.status[zone]
        hosted = {"hosted_zone_id": self.hosted_zones[zone]}
        if error is not None and zone not in self._failing:
            if status.consecutive_failures < FAILING_AFTER or status.last_error is None:
                return
            kind, message, _ = status.last_error
            failing = {**hosted, "state": "failing", "error": kind, "message": message}
            self._record(
                zone,
                FAILED,
                {**hosted, "state": "ok"},
                {**failing, "failed_attempts": status.consecutive_failures},
                f"Route53 failed {status.consecutive_failures} times in a row: {kind}: {message}",
            )
        elif error is None and zone in self._failing:
            last = status.last_error[0] if status.last_error is not None else None
            self._record(
                zone,
                RECOVERED,
                {**hosted, "state": "failing", "error": last},
                {**hosted, "state": "ok"},
                "Route53 takes the zone's changes again",
            )

    def _record(
        self, zone: str, action: str, before: dict[str, Any], after: dict[str, Any], why: str
    ) -> None:
        assert self._failing is not None
        try:
            self.state.record(FODNS_ACTOR, zone, action, before, after, why)
        except Exception:  # the database did not take it: said at the next pass
            log.exception("route53_transition_not_recorded", zone=zone, action=action)
            return
        if action == FAILED:
            self._failing.add(zone)
        else:
            self._failing.discard(zone)

    def _failed(self, zone: str, error: Exception) -> None:
        if isinstance(error, MirrorError):
            kind = error.kind
        else:
            kind = type(error).__name__
            log.exception("route53_unexpected_error", zone=zone)
        status = self.status[zone]
        self.errors[kind] = self.errors.get(kind, 0) + 1
        status.errors += 1
        status.consecutive_failures += 1
        status.last_error = (kind, str(error)[:500], time.time())
        status.needs_full_sync = True  # after a failure, trust nothing remembered
        # Exponential backoff with full jitter (the AWS retry guidance).
        exponent = min(status.consecutive_failures - 1, 16)
        ceiling = min(BACKOFF_MAX, BACKOFF_FIRST * 2**exponent)
        wait = random.uniform(ceiling / 2, ceiling)
        status.retry_at = time.monotonic() + wait
        log.warning(
            "route53_failed", zone=zone, kind=kind, error=str(error), retry_in=round(wait, 2)
        )

    def _answer_requests(self) -> None:
        with self._lock:
            requests, self._requests = self._requests, []
        for kind, future in requests:
            if not future.set_running_or_notify_cancel():
                continue  # cancelled by its caller before we got to it
            plans: list[Plan] = []
            failure: BaseException | None = None
            apply = kind == "sync"
            for zone in self.hosted_zones:
                error = self._attempt(zone, functools.partial(self._plan_into, plans, apply))
                failure = failure or error
            with contextlib.suppress(InvalidStateError):  # its caller is gone: fine
                if failure is None:
                    future.set_result(plans)
                else:
                    future.set_exception(failure)

    def _plan_into(self, plans: list[Plan], apply: bool, zone: str) -> None:
        plans.append(self._full_sync(zone, apply=apply))

    def _follow(self, zone: str) -> None:
        status = self.status[zone]
        cursor, remembered = self.state.cursor_and_records(zone)
        if cursor is None or status.needs_full_sync or self._full_sync_due(status):
            self._full_sync(zone, apply=True)
            return
        touched = self.store.touched_since(cursor)
        status.pending_events = len(touched.events)
        if not touched.events:
            status.lag_seconds = 0.0
            return
        status.lag_seconds = _age(touched.events[0].at)
        # The log says what to look at, the state (read with it) says what it is now.
        wanted: dict[MirrorKey, MirrorValue] = {}
        groups, deleted_labels = touched.in_zone(zone)
        names = {f"{label}.{zone}." for label in deleted_labels}
        for group in groups:
            wanted.update(group_records(group, touched.apps))
            names.add(f"{group.fqdn}.")
        keys = {(name, kind) for name in names for kind in OWNED_TYPES}
        keys &= set(wanted) | set(remembered)
        result = plan(zone, self.hosted_zones[zone], wanted, remembered, keys, status.foreign)
        self._note(zone, result, names)
        self._apply(zone, result, touched.last_seq)

    def _full_sync_due(self, status: ZoneStatus) -> bool:
        interval = self.config.full_sync_interval
        return interval > 0 and (
            status.last_success is None or time.time() - status.last_success > interval
        )

    def _full_sync(self, zone: str, *, apply: bool) -> Plan:
        """List the hosted zone and compare all of it: what fodns holds there against
        what its groups answer; what others hold there is reported and left alone."""
        status = self.status[zone]
        seq = self.store.last_seq()  # read first: later events are replayed after

        def records_of(
            groups: Iterable[Group], apps: dict[str, App]
        ) -> dict[MirrorKey, MirrorValue]:
            wanted: dict[MirrorKey, MirrorValue] = {}
            for group in groups:
                wanted.update(group_records(group, apps))
            return wanted

        wanted = self.store.read_groups(records_of, zone)
        _, remembered = self.state.cursor_and_records(zone)
        listed = self._list(zone)
        written = self.state.sent(zone)
        held, foreign = ownership(
            zone, listed, remembered, lambda key, value: (*key, *value) in written
        )
        result = plan(zone, self.hosted_zones[zone], wanted, held, foreign=foreign)
        if apply:
            status.foreign = foreign
            self.store.replace_reserved_labels(
                zone, RESERVED_BY_ROUTE53, reserved_labels(zone, foreign)
            )
            self._note(zone, result)
            log.info(
                "route53_full_sync",
                zone=zone,
                add=len(result.add),
                change=len(result.change),
                remove=len(result.remove),
                unchanged=result.unchanged,
                skipped=len(result.skipped),
                conflicts=len(result.conflicts),
            )
            self._apply(zone, result, seq, full=True)
            status.full_syncs += 1
            status.needs_full_sync = False
        return result

    def _note(self, zone: str, result: Plan, names: set[str] | None = None) -> None:
        """Keep the zone's skipped record sets and conflicts as the plan found them (for
        the names it looked at: all of them, or `names`); log each new one once."""
        status = self.status[zone]
        status.skipped = _refreshed(status.skipped, result.skipped, names)
        status.conflicts = _refreshed(status.conflicts, result.conflicts, names)
        self._report_skipped(zone, result.skipped)
        for key, theirs in result.conflicts.items():
            self._warn_once(
                "route53_conflict",
                zone,
                key,
                "conflict " + " ".join(theirs),
                held_by=list(theirs),
                left="record sets fodns did not write are never changed or deleted",
            )

    def _report_skipped(
        self, zone: str, skipped: Mapping[MirrorKey, tuple[MirrorValue, str]]
    ) -> None:
        for key, (value, why) in skipped.items():
            self._warn_once(
                "route53_record_set_skipped",
                zone,
                key,
                why,
                values=len(value[1]),
                reason=why,
                mirrored="the rest of the zone",
            )

    def _warn_once(self, event: str, zone: str, key: MirrorKey, what: str, **fields: Any) -> None:
        """Log `event` for this record set the first time `what` is seen of it, not on
        every pass of the mirror (a conflict or a skip stays until someone acts)."""
        if (zone, key, what) in self._reported:
            return
        self._reported.add((zone, key, what))
        log.warning(event, zone=zone, name=key[0], type=key[1], **fields)

    def _list(self, zone: str) -> list[Listed]:
        """Every record set of the hosted zone. One that cannot be read (a name or TTL
        of a form fodns does not know) is left out, and so never touched."""
        parameters: dict[str, Any] = {"HostedZoneId": self.hosted_zones[zone]}
        listed: list[Listed] = []
        for _ in range(LIST_PAGES_MAX):
            page = self._call("list_resource_record_sets", **parameters)
            for rrset in page.get("ResourceRecordSets", []):
                try:
                    listed.append(listed_record_set(rrset))
                except (KeyError, TypeError, ValueError, AttributeError) as error:
                    log.warning("route53_record_set_unreadable", zone=zone, error=repr(error))
            if not page.get("IsTruncated"):
                return listed
            parameters["StartRecordName"] = page["NextRecordName"]
            parameters["StartRecordType"] = page["NextRecordType"]
            if "NextRecordIdentifier" in page:  # routing policies: several sets a name
                parameters["StartRecordIdentifier"] = page["NextRecordIdentifier"]
            else:
                parameters.pop("StartRecordIdentifier", None)
        raise MirrorError("ListTooLong", f"still truncated after {LIST_PAGES_MAX} pages")

    def _apply(self, zone: str, result: Plan, seq: int, *, full: bool = False) -> None:
        """Send the plan batch by batch, each waited on until INSYNC, remembering what
        each batch set; then move the cursor to `seq`. In a full sync, a change Route53
        refuses is found and left out (see `_send`); elsewhere a refusal means fodns's
        idea of Route53 is wrong, and the zone's next attempt is a full sync."""
        status = self.status[zone]
        refused: dict[MirrorKey, str] | None = {} if full else None
        for batch in batches(result.changes()):
            self._send(zone, batch, seq, refused)
        if refused:
            after = result.after()
            found: dict[MirrorKey, tuple[MirrorValue, str]] = {}
            for key, why in refused.items():
                before = result.held.get(key)
                if before is None:
                    after.pop(key, None)
                else:
                    after[key] = before
                value = result.add.get(key) or result.remove.get(key) or result.change[key][1]
                found[key] = (value, why)
            status.skipped = {**status.skipped, **found}
            self._report_skipped(zone, found)
            self.state.save(zone, after, seq, replace=True)
        elif full:
            self.state.save(zone, result.after(), seq, replace=True)
        else:
            self.state.save(zone, {}, seq)
        status.last_success = time.time()
        status.pending_events = 0
        status.lag_seconds = 0.0
        if not result.empty:
            log.info(
                "route53_mirrored",
                zone=zone,
                seq=seq,
                creates=len(result.add),
                upserts=len(result.change),
                deletes=len(result.remove),
            )

    def _send(
        self,
        zone: str,
        batch: list[dict[str, Any]],
        seq: int,
        refused: dict[MirrorKey, str] | None,
    ) -> None:
        """One change batch, waited on until INSYNC, then remembered. With `refused`
        (a full sync, so fodns's view of the hosted zone is fresh), a batch Route53
        refuses as invalid is halved until the changes it refuses stand alone: those
        go into `refused`, every other change is sent. One record set Route53 will not
        take never keeps the rest of the zone out."""
        sent = {_key(change): _value(change) for change in batch}
        # Written down before it goes out: should Route53 take it and fodns never
        # hear so, the record set is still known to be fodns's.
        self.state.remember_sent(
            zone, {key: sent[key] for key in sent if _action(batch, key) != "DELETE"}
        )
        try:
            response = self._call(
                "change_resource_record_sets",
                HostedZoneId=self.hosted_zones[zone],
                ChangeBatch={"Comment": f"fodns {zone} up to event {seq}", "Changes": batch},
            )
        except MirrorError as error:
            if refused is None or error.kind not in REFUSAL_CODES:
                raise
            if len(refused) >= REFUSALS_MAX:
                raise  # Route53 refuses everything (the hosted zone of another domain?)
            if len(batch) == 1:
                refused[_key(batch[0])] = f"Route53 refused it: {error.kind}: {error}"[:500]
                return
            half = len(batch) // 2
            self._send(zone, batch[:half], seq, refused)
            self._send(zone, batch[half:], seq, refused)
            return
        self.status[zone].batches += 1
        self._wait_insync(response["ChangeInfo"])
        self.state.save(
            zone, {key: None if _action(batch, key) == "DELETE" else sent[key] for key in sent}
        )

    def _wait_insync(self, change_info: Mapping[str, Any]) -> None:
        wait = INSYNC_POLL_FIRST
        deadline = time.monotonic() + INSYNC_TIMEOUT
        while change_info.get("Status") != "INSYNC":
            if time.monotonic() > deadline:
                log.warning("route53_not_insync", change=change_info.get("Id"))
                return
            if self._stopping.wait(wait):
                return  # Route53 took the batch; INSYNC is only its spreading
            wait = min(INSYNC_POLL_MAX, wait * 2)
            change_info = self._call("get_change", Id=change_info["Id"])["ChangeInfo"]

    def _call(self, operation: str, **parameters: Any) -> Any:
        """One Route53 call; every failure becomes a MirrorError naming its kind."""
        try:
            if self._client is None:
                self._client = self._client_factory(self.config)
            result = getattr(self._client, operation)(**parameters)
        except Exception as error:
            response = getattr(error, "response", None)
            code = (response or {}).get("Error", {}).get("Code") if response else None
            raise MirrorError(code or type(error).__name__, str(error)) from error
        return result


def _refreshed(
    known: Mapping[MirrorKey, T], found: Mapping[MirrorKey, T], names: set[str] | None
) -> dict[MirrorKey, T]:
    """`known` with what `found` says for the keys of `names` (all keys: None). A new
    dict, never an edit: /healthz reads the old one from another thread meanwhile."""
    kept = {k: v for k, v in known.items() if names is not None and k[0] not in names}
    return {**kept, **found}


def _key(change: Mapping[str, Any]) -> MirrorKey:
    rrset = change["ResourceRecordSet"]
    return (rrset["Name"], rrset["Type"])


def _value(change: Mapping[str, Any]) -> MirrorValue:
    rrset = change["ResourceRecordSet"]
    return (rrset["TTL"], tuple(r["Value"] for r in rrset["ResourceRecords"]))


def _action(batch: list[dict[str, Any]], key: MirrorKey) -> str:
    """The action of `key` in the batch (a plan has one change per key)."""
    return next(str(change["Action"]) for change in batch if _key(change) == key)


def listed_record_set(rrset: Mapping[str, Any]) -> Listed:
    name = _unescape(str(rrset["Name"])).lower()
    if not name.endswith("."):
        name += "."
    simple = "TTL" in rrset and "ResourceRecords" in rrset
    simple = simple and not any(key in rrset for key in NOT_SIMPLE)
    value = None
    if simple:
        value = (
            int(rrset["TTL"]),
            tuple(sorted(str(r["Value"]) for r in rrset["ResourceRecords"])),
        )
    return Listed(name, str(rrset["Type"]), value)


def _age(at: str) -> float:
    """Seconds since an event's time; 0 when the stored time cannot be read."""
    try:
        moment = datetime.fromisoformat(at.replace("Z", "+00:00")).timestamp()
    except (ValueError, AttributeError):
        return 0.0
    return max(0.0, time.time() - moment)


def _unescape(name: str) -> str:
    """Route53 lists characters other than a-z, 0-9, '-' and '_' as \\ and three octal
    digits (\\052 for *); anything else after a backslash is kept as it is."""
    return OCTAL_ESCAPE.sub(lambda match: chr(int(match.group(1), 8)), name)
