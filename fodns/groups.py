"""Group answers: the records a failover group serves, and keeping the table in step.

A group answers with its active app's web head: A and AAAA records for
addresses, a CNAME for a hostname, with the group's TTL. A group whose active
side has no app (or an app with no web head) exists with no records: NODATA.
"""

from __future__ import annotations

import ipaddress
from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any, Protocol

import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rrset

from fodns.errors import NotFound
from fodns.model import App, Group
from fodns.table import AnswerTable
from fodns.zone import AAAA, CNAME, A, RRset, wire_key

IN = dns.rdataclass.IN


class GroupChange(Protocol):
    """What the store reports of a committed write (see store.Change)."""

    @property
    def groups(self) -> tuple[Group, ...]: ...

    @property
    def deleted_groups(self) -> tuple[tuple[str, str], ...]: ...

    @property
    def apps(self) -> dict[str, App]: ...

    @property
    def serials(self) -> dict[str, int]: ...


def web_head_records(group: Group, apps: Mapping[str, App]) -> list[tuple[str, str]]:
    """(type, data) of every record the group serves now, e.g. [("A", "192.0.2.10")]."""
    active = group.active_app
    head = apps[active].web_head if active is not None and active in apps else ()
    records = []
    for value in head:
        if value.endswith("."):
            records.append(("CNAME", value))
        else:
            kind = "A" if ipaddress.ip_address(value).version == 4 else "AAAA"
            records.append((kind, value))
    return records


def group_rrsets(group: Group, apps: Mapping[str, App]) -> dict[int, RRset]:
    """The group's records by type, as the answer table takes them ({} is NODATA)."""
    owner = dns.name.from_text(group.fqdn)
    rrsets: dict[int, RRset] = {}
    for kind, data in web_head_records(group, apps):
        rdtype = {"A": A, "AAAA": AAAA, "CNAME": CNAME}[kind]
        rrset = rrsets.get(rdtype)
        if rrset is None:
            rrset = rrsets[rdtype] = dns.rrset.RRset(owner, IN, rdtype)
        rrset.add(dns.rdata.from_text(IN, rdtype, data), group.ttl)
    return rrsets


def answer_json(group: Group, apps: Mapping[str, App]) -> dict[str, Any]:
    """A group as the API shows it: its fields and the records it answers with now."""
    return {
        **group.to_json(),
        "answer": [{"type": t, "data": d} for t, d in web_head_records(group, apps)],
    }


def apply_groups(
    table: AnswerTable,
    groups: Iterable[Group],
    apps: Mapping[str, App],
    serials: Mapping[str, int],
    deleted: Iterable[tuple[str, str]] = (),
) -> None:
    """Install the groups' current answers (and remove deleted groups), zone by zone,
    with each zone's new serial; zones the table does not serve are skipped."""
    by_zone: dict[str, dict[dns.name.Name, dict[int, RRset] | None]] = defaultdict(dict)
    for group in groups:
        by_zone[group.zone][dns.name.from_text(group.fqdn)] = group_rrsets(group, apps)
    for zone, label in deleted:
        by_zone[zone][dns.name.from_text(f"{label}.{zone}")] = None
    for zone in set(by_zone) | set(serials):
        origin = dns.name.from_text(zone)
        if wire_key(origin) not in table.zones:
            continue
        table.apply(origin, by_zone.get(zone, {}), serials.get(zone))


def follow(table: AnswerTable, change: GroupChange) -> None:
    """Apply one committed store change to the table."""
    apply_groups(table, change.groups, change.apps, change.serials, change.deleted_groups)


class GroupSource(Protocol):
    """The reads of the store that following its log needs (see store.Store)."""

    def events_since(self, seq: int) -> list[Any]: ...

    def group(self, label: str, zone: str | None = None) -> Group: ...

    def groups_using(self, app: str) -> list[Group]: ...

    def app(self, name: str) -> App: ...

    def serial(self, zone: str) -> int: ...


def catch_up(table: AnswerTable, store: GroupSource, applied_seq: int) -> int:
    """Apply every event after `applied_seq` to the table; the last seq applied.

    Events say which group or app changed; the records come from the store's
    current state, so however many events are read at once, the table ends up
    as the store is (the log orders, the state answers).
    """
    events = store.events_since(applied_seq)
    if not events:
        return applied_seq
    changed: dict[tuple[str, str], Group] = {}
    deleted: set[tuple[str, str]] = set()
    app_names: set[str] = set()
    for event in events:
        if event.group is not None and event.zone is not None:
            key = (event.zone, event.group)
            try:
                changed[key] = store.group(event.group, event.zone)
                deleted.discard(key)
            except NotFound:
                changed.pop(key, None)
                deleted.add(key)
        if event.app is not None:
            current = (event.after or {}).get("name", event.app)
            app_names.add(current)
    for name in app_names:
        try:
            for group in store.groups_using(name):
                changed[(group.zone, group.label)] = group
        except NotFound:
            continue
    apps: dict[str, App] = {}
    for group in changed.values():
        if group.active_app is not None and group.active_app not in apps:
            apps[group.active_app] = store.app(group.active_app)
    zones = {zone for zone, _ in changed} | {zone for zone, _ in deleted}
    serials = {zone: store.serial(zone) for zone in zones}
    apply_groups(table, changed.values(), apps, serials, deleted)
    return int(events[-1].seq)
