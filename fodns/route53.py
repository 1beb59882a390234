"""The Route53 mirror: a hosted zone per fodns zone kept equal to the groups' answers.

It follows the change log like every other consumer. A thread (boto3 blocks;
neither DNS nor the API ever waits for it) reads the events after the zone's
cursor, works out the record sets of the groups they touched from the store's
current state, and sends the difference from what Route53 holds as UPSERTs and
DELETEs, batched within Route53's limits, one batch at a time per zone, each
waited on until GetChange says INSYNC. Only then do the mirror's records and
its cursor move, in the database, so a crash or an outage replays the events:
nothing is lost. Throttling, PriorRequestNotComplete and outages are retried
with exponential backoff and full jitter.

A full sync (at start, on demand, after every outage, and every
`full_sync_interval`) lists the hosted zone and compares everything fodns owns
there: the A, AAAA and CNAME record sets named after a label fodns has ever
given a group in that zone. Nothing else in the hosted zone is ever touched.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from fodns.config import Route53Config, ZoneConfig
from fodns.errors import NotFound
from fodns.logs import get_logger
from fodns.model import App, Group
from fodns.records import group_answer
from fodns.store import MirrorKey, MirrorValue, Store

log = get_logger()
OWNED_TYPES = frozenset({"A", "AAAA", "CNAME"})
# ChangeResourceRecordSets limits: ResourceRecord elements and characters of
# values per request, an UPSERT counting twice for both.
BATCH_MAX_RECORDS = 1000
BATCH_MAX_CHARACTERS = 32_000
POLL_INTERVAL = 0.2  # how often the log is checked without a wake-up
INSYNC_POLL_FIRST = 0.2
INSYNC_POLL_MAX = 5.0
INSYNC_TIMEOUT = 300.0  # Route53 documents INSYNC within 60 s
BACKOFF_FIRST = 0.5
BACKOFF_MAX = 20.0
# Errors that mean fodns's idea of Route53's records is wrong (a DELETE of a
# record set that is not there as remembered): fixed by a full sync.
MISMATCH_CODES = frozenset({"InvalidChangeBatch", "InvalidInput"})


@dataclass(frozen=True)
class Plan:
    """The differences between fodns's records and a hosted zone's, for one zone."""

    zone: str
    hosted_zone_id: str
    add: dict[MirrorKey, MirrorValue] = field(default_factory=dict)
    change: dict[MirrorKey, tuple[MirrorValue, MirrorValue]] = field(default_factory=dict)
    remove: dict[MirrorKey, MirrorValue] = field(default_factory=dict)
    unchanged: int = 0

    @property
    def empty(self) -> bool:
        return not (self.add or self.change or self.remove)

    def changes(self) -> list[dict[str, Any]]:
        """Route53 Change elements: UPSERT for added and changed, DELETE (with the exact
        TTL and values) for removed. Name by name, DELETE first: a switch from
        addresses to a hostname removes the A records before the CNAME arrives, which
        may not share its name with them (RFC 1034 §3.6.2)."""
        actions = [(k, 0, "DELETE", v) for k, v in self.remove.items()]
        actions += [(k, 1, "UPSERT", v) for k, v in self.add.items()]
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
        }


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
    return Plan(zone, hosted_zone_id, add, change, remove, unchanged)


def group_records(group: Group, apps: Mapping[str, App]) -> dict[MirrorKey, MirrorValue]:
    """The record sets a group answers with, as Route53 holds them."""
    answer = group_answer(group, apps)
    by_type: dict[str, list[str]] = {}
    for kind, data in answer.records:
        by_type.setdefault(kind, []).append(data)
    name = f"{answer.fqdn}."
    return {(name, kind): (group.ttl, tuple(sorted(values))) for kind, values in by_type.items()}


def batches(changes: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Changes cut into requests Route53 accepts (its limits count an UPSERT twice)."""
    result: list[list[dict[str, Any]]] = []
    batch: list[dict[str, Any]] = []
    records = characters = 0
    for change in changes:
        values = [r["Value"] for r in change["ResourceRecordSet"]["ResourceRecords"]]
        weight = 2 if change["Action"] == "UPSERT" else 1
        change_records = weight * len(values)
        change_characters = weight * sum(len(v) for v in values)
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
            read_timeout=30,
        ),
    )


class MirrorError(Exception):
    """A Route53 call failed; `kind` is its error code (or the exception's class)."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


@dataclass
class ZoneStatus:
    """What /healthz and /metrics say of one zone's mirror."""

    hosted_zone_id: str
    pending_events: int = 0
    lag_seconds: float = 0.0
    last_success: float | None = None  # time.time() of the last call that succeeded
    batches: int = 0
    full_syncs: int = 0
    needs_full_sync: bool = True


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
        self._failures = 0

    # ---- called from other threads ----

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stopping.set()
        self._wake.set()
        self._thread.join(timeout)

    def alive(self) -> bool:
        """Whether the mirror's thread still runs."""
        return self._thread.is_alive()

    def changed(self) -> None:
        """A change was committed: look at the log now rather than at the next poll."""
        self._wake.set()

    def request(self, kind: str) -> Future[list[Plan]]:
        """ "plan": every zone's differences, changing nothing; "sync": a full sync now.
        Run on the mirror's thread, so a sync never overlaps the mirror's own batches."""
        future: Future[list[Plan]] = Future()
        with self._lock:
            self._requests.append((kind, future))
        self._wake.set()
        return future

    def health(self) -> dict[str, Any]:
        now = time.time()
        return {
            "zones": {
                zone: {
                    "hosted_zone_id": s.hosted_zone_id,
                    "pending_events": s.pending_events,
                    "lag_seconds": round(s.lag_seconds, 3),
                    "last_success_seconds_ago": None
                    if s.last_success is None
                    else round(now - s.last_success, 3),
                    "batches": s.batches,
                    "full_syncs": s.full_syncs,
                }
                for zone, s in self.status.items()
            },
            "errors": dict(self.errors),
        }

    # ---- the mirror's thread ----

    def _run(self) -> None:
        while not self._stopping.is_set():
            self._wake.wait(POLL_INTERVAL)
            self._wake.clear()
            if self._stopping.is_set():
                break
            self._answer_requests()
            try:
                for zone in self.hosted_zones:
                    self._follow(zone)
                self._failures = 0
            except MirrorError as error:
                self._failed(error)
            except Exception as error:  # never let the thread die: log, back off, retry
                log.exception("route53_unexpected_error")
                self._failed(MirrorError(type(error).__name__, str(error)))

    def _failed(self, error: MirrorError) -> None:
        self.errors[error.kind] = self.errors.get(error.kind, 0) + 1
        for status in self.status.values():
            status.needs_full_sync = True  # after an outage, trust nothing remembered
        self._failures += 1
        # Exponential backoff with full jitter (the AWS retry guidance).
        ceiling = min(BACKOFF_MAX, BACKOFF_FIRST * 2 ** (self._failures - 1))
        wait = random.uniform(ceiling / 2, ceiling)
        log.warning("route53_failed", kind=error.kind, error=str(error), retry_in=round(wait, 2))
        self._stopping.wait(wait)

    def _answer_requests(self) -> None:
        with self._lock:
            requests, self._requests = self._requests, []
        for kind, future in requests:
            try:
                plans = [self._full_sync(zone, apply=kind == "sync") for zone in self.hosted_zones]
                future.set_result(plans)
            except Exception as error:
                future.set_exception(error)

    def _follow(self, zone: str) -> None:
        status = self.status[zone]
        cursor, mirrored = self.store.mirror_state(zone)
        if cursor is None or status.needs_full_sync or self._full_sync_due(status):
            self._full_sync(zone, apply=True)
            return
        events = self.store.events_since(cursor)
        status.pending_events = len(events)
        if not events:
            status.lag_seconds = 0.0
            return
        status.lag_seconds = max(0.0, time.time() - _event_time(events[0].at))
        wanted, keys = self._wanted_after(zone, events, mirrored)
        plan = diff(zone, self.hosted_zones[zone], wanted, mirrored, keys)
        self._apply(zone, plan, int(events[-1].seq))

    def _full_sync_due(self, status: ZoneStatus) -> bool:
        interval = self.config.full_sync_interval
        return interval > 0 and (
            status.last_success is None or time.time() - status.last_success > interval
        )

    def _wanted_after(
        self, zone: str, events: list[Any], mirrored: Mapping[MirrorKey, MirrorValue]
    ) -> tuple[dict[MirrorKey, MirrorValue], set[MirrorKey]]:
        """The record sets of the groups these events touched, from the store's current
        state (the log says what to look at, the state says what it is now)."""
        labels: set[str] = set()
        app_names: set[str] = set()
        for event in events:
            if event.group is not None and event.zone == zone:
                labels.add(event.group)
            if event.app is not None:
                app_names.add((event.after or {}).get("name", event.app))
        groups: dict[str, Group] = {}
        for name in app_names:
            try:
                groups.update({g.label: g for g in self.store.groups_using(name) if g.zone == zone})
            except NotFound:
                continue
        for label in labels - set(groups):
            try:
                groups[label] = self.store.group(label, zone)
            except NotFound:
                continue  # deleted: its record sets go
        apps = {name: self.store.app(name) for g in groups.values() for name in _apps_of(g)}
        wanted: dict[MirrorKey, MirrorValue] = {}
        for group in groups.values():
            wanted.update(group_records(group, apps))
        names = {f"{label}.{zone}." for label in labels | set(groups)}
        keys = {(name, kind) for name in names for kind in OWNED_TYPES}
        keys &= set(wanted) | set(mirrored)
        return wanted, keys

    def _full_sync(self, zone: str, *, apply: bool) -> Plan:
        status = self.status[zone]
        seq = self.store.last_seq()  # read first: later events are replayed after
        groups, apps, _, _ = self.store.snapshot()
        wanted: dict[MirrorKey, MirrorValue] = {}
        for group in groups:
            if group.zone == zone:
                wanted.update(group_records(group, apps))
        present = self._owned_records(zone)
        plan = diff(zone, self.hosted_zones[zone], wanted, present)
        if apply:
            log.info(
                "route53_full_sync",
                zone=zone,
                add=len(plan.add),
                change=len(plan.change),
                remove=len(plan.remove),
                unchanged=plan.unchanged,
            )
            self._apply(zone, plan, seq, replace_with=wanted)
            status.full_syncs += 1
            status.needs_full_sync = False
        return plan

    def _owned_records(self, zone: str) -> dict[MirrorKey, MirrorValue]:
        """Every record set of the hosted zone that fodns owns."""
        labels = self.store.labels(zone)
        suffix = f".{zone}."
        owned: dict[MirrorKey, MirrorValue] = {}
        pages = self._call("list_resource_record_sets", HostedZoneId=self.hosted_zones[zone])
        while True:
            for rrset in pages["ResourceRecordSets"]:
                name = _unescape(rrset["Name"]).lower()
                label = name[: -len(suffix)] if name.endswith(suffix) else ""
                if rrset["Type"] in OWNED_TYPES and label in labels and "TTL" in rrset:
                    values = tuple(sorted(r["Value"] for r in rrset.get("ResourceRecords", [])))
                    owned[(name, rrset["Type"])] = (int(rrset["TTL"]), values)
            if not pages.get("IsTruncated"):
                return owned
            pages = self._call(
                "list_resource_record_sets",
                HostedZoneId=self.hosted_zones[zone],
                StartRecordName=pages["NextRecordName"],
                StartRecordType=pages["NextRecordType"],
            )

    def _apply(
        self,
        zone: str,
        plan: Plan,
        seq: int,
        replace_with: Mapping[MirrorKey, MirrorValue] | None = None,
    ) -> None:
        """Send the plan batch by batch, each waited on until INSYNC, remembering what
        each batch set; then move the cursor to `seq`."""
        status = self.status[zone]
        try:
            for batch in batches(plan.changes()):
                response = self._call(
                    "change_resource_record_sets",
                    HostedZoneId=self.hosted_zones[zone],
                    ChangeBatch={"Comment": f"fodns {zone} up to event {seq}", "Changes": batch},
                )
                status.batches += 1
                self._wait_insync(response["ChangeInfo"])
                accepted: dict[MirrorKey, MirrorValue | None] = {}
                for change in batch:
                    rrset = change["ResourceRecordSet"]
                    key = (rrset["Name"], rrset["Type"])
                    value = (rrset["TTL"], tuple(r["Value"] for r in rrset["ResourceRecords"]))
                    accepted[key] = value if change["Action"] == "UPSERT" else None
                if replace_with is None:
                    self.store.save_mirror(zone, accepted)
            if replace_with is not None:
                self.store.save_mirror(zone, replace_with, seq, replace=True)
            else:
                self.store.save_mirror(zone, {}, seq)
        except MirrorError as error:
            if error.kind in MISMATCH_CODES:
                status.needs_full_sync = True  # Route53 is not what fodns remembered
            raise
        status.last_success = time.time()
        status.pending_events = 0
        status.lag_seconds = 0.0
        if not plan.empty:
            log.info(
                "route53_mirrored",
                zone=zone,
                seq=seq,
                upserts=len(plan.add) + len(plan.change),
                deletes=len(plan.remove),
            )

    def _wait_insync(self, change_info: Mapping[str, Any]) -> None:
        wait = INSYNC_POLL_FIRST
        deadline = time.monotonic() + INSYNC_TIMEOUT
        while change_info.get("Status") != "INSYNC":
            if time.monotonic() > deadline:
                log.warning("route53_not_insync", change=change_info.get("Id"))
                return
            self._stopping.wait(wait)
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


def _apps_of(group: Group) -> list[str]:
    return [name for name in (group.primary, group.backup) if name is not None]


def _event_time(at: str) -> float:
    return datetime.fromisoformat(at.replace("Z", "+00:00")).timestamp()


def _unescape(name: str) -> str:
    """Route53 lists some characters as octal escapes (\\052 for *)."""
    if "\\" not in name:
        return name
    out, index = [], 0
    while index < len(name):
        if name[index] == "\\" and name[index + 1 : index + 4].isdigit():
            out.append(chr(int(name[index + 1 : index + 4], 8)))
            index += 4
        else:
            out.append(name[index])
            index += 1
    return "".join(out)
