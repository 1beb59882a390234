"""Group answers: the records a failover group serves, rendered into the answer table.

A group answers with its active app's web head: A and AAAA records for
addresses, a CNAME for a hostname, with the group's TTL. A group whose active
side has no app (or an app with no web head) exists with no records: NODATA.
"""

from __future__ import annotations

import functools
import socket
import struct
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping

import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rrset

from fodns import querystats
from fodns.logs import get_logger
from fodns.lookup import Outcome
from fodns.model import App, Group
from fodns.records import group_answer, head_records
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


class GroupRecords(Mapping[int, RRset]):
    """A group's records, kept as (type, data) pairs: the table renders its replies
    straight from them, and dnspython RRsets are built only if a rarer path (ANY,
    a CNAME chase from the zone file) asks, so loading 100,000 groups stays cheap."""

    __slots__ = ("_built", "_by_type", "_head", "fqdn", "ttl")

    def __init__(self, fqdn: str, ttl: int, head: tuple[str, ...]) -> None:
        self.fqdn = fqdn
        self.ttl = ttl
        self._head = head
        self._by_type = _records_by_type(head)
        self._built: dict[int, RRset] = {}

    def __getitem__(self, rdtype: int) -> RRset:
        rrset = self._built.get(rdtype)
        if rrset is None:
            rrset = self._built[rdtype] = self.build(rdtype)
        return rrset

    def build(self, rdtype: int) -> RRset:
        """A new RRset of one type, not kept (KeyError for a type the group lacks)."""
        values = self._by_type[rdtype]
        typed = dns.rdatatype.RdataType.make(rdtype)
        rrset = dns.rrset.RRset(dns.name.from_text(self.fqdn), IN, typed)
        for value in values:
            rrset.add(dns.rdata.from_text(IN, typed, value), self.ttl)
        return rrset

    def wire_records(self, owner: bytes) -> tuple[bytes, int]:
        """Every record in wire form with `owner` (a wire name) as owner, and how many."""
        tails = _record_tails(self.ttl, self._head)
        return b"".join(owner + tail for tail in tails), len(tails)

    def __iter__(self) -> Iterator[int]:
        return iter(self._by_type)

    def __len__(self) -> int:
        return len(self._by_type)

    def __contains__(self, rdtype: object) -> bool:
        return rdtype in self._by_type

    def direct_templates(self, qname_len: int, zone: ZoneData) -> dict[int, Template] | None:
        """Replies for each type, rendered by hand; None when the full lookup must do it
        (a CNAME to a name inside the zone, whose records the reply must follow).

        Groups that follow the same app with the same TTL have identical replies
        (the owner is a pointer to the question), so renderings are shared.
        """
        cache_key = (self.ttl, zone.origin_key, self._head)
        if cache_key in _RENDERED:
            return _RENDERED[cache_key]
        if len(_RENDERED) >= RENDERED_LIMIT:
            _RENDERED.clear()
        templates = _RENDERED[cache_key] = self._render(zone)
        return templates

    def _render(self, zone: ZoneData) -> dict[int, Template] | None:
        ttl = self.ttl
        if CNAME in self._by_type:
            target = dns.name.from_text(self._by_type[CNAME][0])
            if is_at_or_below(wire_key(target), zone.origin_key):
                return None
            target_wire = name_to_wire(target)
            tail = _RR.pack(POINTER_TO_QUESTION, CNAME, IN, ttl, len(target_wire)) + target_wire
            cname = make_template(Outcome.ANSWER, tail, ((len(tail), 0, 1),), -1)
            # RFC 1034 §3.6.2: the CNAME answers every type; A, AAAA and CNAME prebuilt.
            return {
                rdtype: cname._replace(stat=querystats.slot(rdtype, 0))
                for rdtype in (A, AAAA, CNAME)
            }
        templates = {}
        for rdtype, values in self._by_type.items():
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
# Rendered group replies by (TTL, zone, records): bounded, shared by every group
# with the same web head, and never stale (the key is the whole input).
_RENDERED: dict[object, dict[int, Template] | None] = {}
RENDERED_LIMIT = 50_000
# An RR whose owner is a compression pointer: pointer, TYPE, CLASS, TTL, RDLENGTH.
_RR = struct.Struct("!HHHIH")
_RR_AFTER_OWNER = struct.Struct("!HHIH")


def group_rrsets(group: Group, apps: Mapping[str, App]) -> GroupRecords:
    """The group's records by type, as the answer table takes them (empty is NODATA)."""
    answer = group_answer(group, apps)
    return GroupRecords(answer.fqdn, answer.ttl, answer.values)


@functools.lru_cache(maxsize=65536)
def _record_tails(ttl: int, head: tuple[str, ...]) -> tuple[bytes, ...]:
    """Each record of a web head in wire form after its owner: TYPE, CLASS, TTL, RDATA."""
    tails = []
    for kind, data in head_records(head):
        if kind == "CNAME":
            rdata = name_to_wire(dns.name.from_text(data))
        else:
            rdata = socket.inet_pton(socket.AF_INET if kind == "A" else socket.AF_INET6, data)
        tails.append(_RR_AFTER_OWNER.pack(_RDTYPE[kind], IN, ttl, len(rdata)) + rdata)
    return tuple(tails)


@functools.lru_cache(maxsize=65536)
def _records_by_type(head: tuple[str, ...]) -> dict[int, list[str]]:
    """A web head's values by record type; shared (read-only) by every group on it."""
    by_type: dict[int, list[str]] = {}
    for kind, data in head_records(head):
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
    """Start-up: every group into a table that has none yet (see AnswerTable.load_by_key).

    A zone file edited to use a name that a group already has (the API refuses
    the other way round) loses that name to the group: customers' CNAMEs point
    at the group. It is said loudly, once per load, so the operator can rename.
    """
    for origin_key, names, serial in _by_zone(table, groups, apps, serials):
        zone = table.zones[origin_key]
        for key in names.keys() & zone.file_names:
            log.error(
                "zone_name_taken_by_group",
                name=dns.name.from_wire(key, 0)[0].to_text(),
                served="the group's answer; the zone file's records there are not served",
            )
            zone.taken_by_groups[key] = zone.records[key]
        table.load_by_key(origin_key, names, serial)


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
            by_zone[group.zone][key] = group_rrsets(group, apps)
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
