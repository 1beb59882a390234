"""Group answers: the records a failover group serves, rendered into the answer table.

A group answers with its active app's web head: A and AAAA records for
addresses, a CNAME for a hostname, with the group's TTL. A group whose active
side has no app (or an app with no web head) exists with no records: NODATA.
"""

from __future__ import annotations

import socket
import struct
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, Protocol

import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rrset

from fodns import querystats
from fodns.logs import get_logger
from fodns.lookup import Outcome
from fodns.model import App, Group
from fodns.records import Record, app_records, group_answer
from fodns.table import AnswerTable
from fodns.wire import POINTER_TO_QUESTION, Template, make_template
from fodns.zone import (
    AAAA,
    CNAME,
    A,
    RRset,
    ZoneData,
    is_at_or_below,
    name_to_wire,
    wire_key,
)

IN = dns.rdataclass.IN
log = get_logger()


class HeadRecords:
    """The records of one web head at one TTL, in the forms the table and transfers
    take them: shared by every group that answers with them (a million groups on
    100,000 apps need 100,000 of these, not a million)."""

    __slots__ = ("by_type", "tails", "templates", "ttl")

    def __init__(self, ttl: int, records: tuple[Record, ...]) -> None:
        self.ttl = ttl
        self.by_type = _records_by_type(records)
        self.tails = _record_tails(ttl, records)
        # Rendered replies per zone (by origin key): see direct_templates.
        self.templates: dict[bytes, dict[int, Template] | None] = {}


class GroupRecords(Mapping[int, RRset]):
    """A group's records: its name's wire key and the shared records of its web head.

    Two references per group is all the table keeps of it (plus its keys): the
    replies are shared renderings, and dnspython RRsets are built only if a rarer
    path (ANY, a CNAME chase from the zone file) asks for one, each time it asks;
    those replies are cached by the table, not here.
    """

    __slots__ = ("key", "shared")

    def __init__(self, key: bytes, shared: HeadRecords) -> None:
        self.key = key
        self.shared = shared

    @property
    def ttl(self) -> int:
        return self.shared.ttl

    def __getitem__(self, rdtype: int) -> RRset:
        return self.build(rdtype)

    def build(self, rdtype: int) -> RRset:
        """A new RRset of one type, not kept (KeyError for a type the group lacks)."""
        values = self.shared.by_type[rdtype]
        typed = dns.rdatatype.RdataType.make(rdtype)
        rrset = dns.rrset.RRset(dns.name.from_wire(self.key, 0)[0], IN, typed)
        for value in values:
            rrset.add(dns.rdata.from_text(IN, typed, value), self.shared.ttl)
        return rrset

    def wire_records(self, owner: bytes) -> tuple[bytes, int]:
        """Every record in wire form with `owner` (a wire name) as owner, and how many."""
        tails = self.shared.tails
        return b"".join(owner + tail for tail in tails), len(tails)

    def __iter__(self) -> Iterator[int]:
        return iter(self.shared.by_type)

    def __len__(self) -> int:
        return len(self.shared.by_type)

    def __contains__(self, rdtype: object) -> bool:
        return rdtype in self.shared.by_type

    def direct_templates(self, qname_len: int, zone: ZoneData) -> dict[int, Template] | None:
        """Replies for each type, rendered by hand; None when the full lookup must do it
        (a CNAME to a name inside the zone, whose records the reply must follow).

        Every group on the same web head with the same TTL has the same replies (the
        owner is a pointer to the question), so they are rendered once per zone.
        """
        shared = self.shared
        try:
            return shared.templates[zone.origin_key]
        except KeyError:
            templates = shared.templates[zone.origin_key] = _render(shared, zone)
            return templates


def _render(shared: HeadRecords, zone: ZoneData) -> dict[int, Template] | None:
    """The replies of a group on `shared` in `zone`, by type (see direct_templates)."""
    ttl = shared.ttl
    by_type = shared.by_type
    if CNAME in by_type:
        target = dns.name.from_text(by_type[CNAME][0])
        if is_at_or_below(wire_key(target), zone.origin_key):
            return None
        target_wire = name_to_wire(target)
        tail = _RR.pack(POINTER_TO_QUESTION, CNAME, IN, ttl, len(target_wire)) + target_wire
        cname = make_template(Outcome.ANSWER, tail, ((len(tail), 0, 1),), -1)
        # RFC 1034 §3.6.2: the CNAME answers every type; A, AAAA and CNAME prebuilt.
        return {
            rdtype: cname._replace(stat=querystats.slot(rdtype, 0)) for rdtype in (A, AAAA, CNAME)
        }
    templates = {}
    for rdtype, values in by_type.items():
        family = socket.AF_INET if rdtype == A else socket.AF_INET6
        tail = b"".join(
            _RR.pack(POINTER_TO_QUESTION, rdtype, IN, ttl, 4 if rdtype == A else 16)
            + socket.inet_pton(family, value)
            for value in values
        )
        templates[rdtype] = make_template(
            Outcome.ANSWER,
            tail,
            ((len(tail), 0, len(values)),),
            querystats.slot(rdtype, 0),
        )
    return templates


_RDTYPE = {"A": A, "AAAA": AAAA, "CNAME": CNAME}
# The shared records by (TTL, records): bounded, and never stale (the key is the
# whole input). Clearing it only stops sharing with groups loaded before.
_SHARED: dict[tuple[int, tuple[Record, ...]], HeadRecords] = {}
SHARED_LIMIT = 262_144
# An RR whose owner is a compression pointer: pointer, TYPE, CLASS, TTL, RDLENGTH.
_RR = struct.Struct("!HHHIH")
_RR_AFTER_OWNER = struct.Struct("!HHIH")


def shared_records(ttl: int, records: tuple[Record, ...]) -> HeadRecords:
    """The one HeadRecords of these records at this TTL."""
    key = (ttl, records)
    shared = _SHARED.get(key)
    if shared is None:
        if len(_SHARED) >= SHARED_LIMIT:
            _SHARED.clear()
        shared = _SHARED[key] = HeadRecords(ttl, records)
    return shared


def group_records(key: bytes, group: Group, apps: Mapping[str, App]) -> GroupRecords:
    """The group's records by type, as the answer table takes them (empty is NODATA);
    `key` is the wire key of its name."""
    answer = group_answer(group, apps)
    return GroupRecords(key, shared_records(answer.ttl, answer.records))


def _record_tails(ttl: int, records: tuple[Record, ...]) -> tuple[bytes, ...]:
    """Each record in wire form after its owner: TYPE, CLASS, TTL, RDATA."""
    tails = []
    for kind, data in records:
        if kind == "CNAME":
            rdata = name_to_wire(dns.name.from_text(data))
        else:
            rdata = socket.inet_pton(socket.AF_INET if kind == "A" else socket.AF_INET6, data)
        tails.append(_RR_AFTER_OWNER.pack(_RDTYPE[kind], IN, ttl, len(rdata)) + rdata)
    return tuple(tails)


def _records_by_type(records: tuple[Record, ...]) -> dict[int, list[str]]:
    """The records' values by record type."""
    by_type: dict[int, list[str]] = {}
    for kind, data in records:
        by_type.setdefault(_RDTYPE[kind], []).append(data)
    return by_type


def apply_groups(
    table: AnswerTable,
    groups: Iterable[Group],
    apps: Mapping[str, App],
    serials: Mapping[str, int],
    deleted: Iterable[tuple[str, str]] = (),
) -> None:
    """Install the groups' current answers (and remove deleted groups), zone by zone,
    with each zone's new serial; zones the table does not serve are skipped."""
    for origin_key, names, serial in _by_zone(table, groups, apps, serials, deleted):
        table.apply_by_key(origin_key, names, serial)


def load_groups(
    table: AnswerTable,
    groups: Iterable[Group],
    apps: Mapping[str, App],
    serials: Mapping[str, int],
) -> None:
    """Start-up: every group into a table that has none yet (see AnswerTable.load_by_key)."""
    lines: dict[str, list[GroupLine]] = defaultdict(list)
    for group in groups:
        lines[group.zone].append((group.label, group.active_app, group.ttl))
    for origin_key, zone in table.zones.items():
        name = zone.origin.to_text(omit_final_dot=True)
        if name in lines or name in serials:
            keyed = ((_label_key(label, origin_key), *rest) for label, *rest in lines.get(name, []))
            _load_zone(table, origin_key, keyed, apps.get, serials.get(name))


class StoredRows(Protocol):
    """What start-up reads the groups from (store.StoredGroups, inside one read
    transaction): apps by id, each zone's served serial, each zone's groups as rows."""

    @property
    def apps(self) -> dict[int, App]: ...

    @property
    def serials(self) -> dict[str, int]: ...

    def rows(self, zone: str, origin_key: bytes) -> Iterator[tuple[bytes, int | None, int]]: ...


def load_stored_groups(table: AnswerTable, stored: StoredRows) -> None:
    """Start-up: every group of the store into a table that has none yet, read zone by
    zone as plain rows and never all held at once (a million groups as Group objects
    took more memory than the table they become)."""
    for origin_key, zone in table.zones.items():
        name = zone.origin.to_text(omit_final_dot=True)
        rows = stored.rows(name, origin_key)
        _load_zone(table, origin_key, rows, stored.apps.get, stored.serials.get(name))


# A group as start-up loads it: label, its active app (by name or by id; None when
# that side has no app), TTL.
GroupLine = tuple[str, Any, int]


def _load_zone(
    table: AnswerTable,
    origin_key: bytes,
    rows: Iterable[tuple[bytes, Any, int]],
    app_of: Callable[[Any], App | None],
    serial: int | None,
) -> None:
    """Load one zone's groups, given as (name key, active app's name or id, TTL), in one
    pass (AnswerTable.load_by_key), and set the zone's serial.

    A zone file edited to use a name that a group already has (the API refuses
    the other way round) loses that name to the group: customers' CNAMEs point
    at the group. It is said loudly so the operator can rename.
    """
    zone = table.zones[origin_key]
    file_names = zone.file_names
    # Groups on the same app with the same TTL share their records: found once per
    # (app, TTL) here.
    shared_of: dict[tuple[Any, int], HeadRecords] = {}

    def named_records() -> Iterator[tuple[bytes, GroupRecords]]:
        for key, app, ttl in rows:
            shared = shared_of.get((app, ttl))
            if shared is None:
                active = None if app is None else app_of(app)
                shared = shared_of[app, ttl] = shared_records(ttl, app_records(active))
            if key in file_names:
                _take_file_name(zone, key)
            yield key, GroupRecords(key, shared)

    table.load_by_key(origin_key, named_records(), serial)


def _take_file_name(zone: ZoneData, key: bytes) -> None:
    log.error(
        "zone_name_taken_by_group",
        name=dns.name.from_wire(key, 0)[0].to_text(),
        served="the group's answer; the zone file's records there are not served",
    )
    zone.taken_by_groups[key] = zone.records[key]


def _by_zone(
    table: AnswerTable,
    groups: Iterable[Group],
    apps: Mapping[str, App],
    serials: Mapping[str, int],
    deleted: Iterable[tuple[str, str]] = (),
) -> Iterator[tuple[bytes, dict[bytes, Mapping[int, RRset] | None], int | None]]:
    """Per zone the table serves: (origin key, records by name key, new serial)."""
    origins = {zone.origin.to_text(omit_final_dot=True): key for key, zone in table.zones.items()}
    by_zone: dict[str, dict[bytes, Mapping[int, RRset] | None]] = defaultdict(dict)
    for group in groups:
        if group.zone in origins:
            key = _label_key(group.label, origins[group.zone])
            by_zone[group.zone][key] = group_records(key, group, apps)
    for zone, label in deleted:
        if zone in origins:
            key = _label_key(label, origins[zone])
            # The zone file's records there, if a group had taken them: the table then
            # equals one built afresh from the files and the store, as after a restart.
            by_zone[zone][key] = table.zones[origins[zone]].taken_by_groups.get(key)
    for zone in (set(by_zone) | set(serials)) & set(origins):
        yield origins[zone], by_zone.get(zone, {}), serials.get(zone)


def _label_key(label: str, origin_key: bytes) -> bytes:
    """The wire key of label.zone, built directly (labels are checked lower-case LDH)."""
    encoded = label.lower().encode("ascii")
    return bytes((len(encoded),)) + encoded + origin_key
