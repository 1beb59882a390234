"""The answer table: every reply we can prebuild, keyed on the question's wire bytes.

The hot path reads two dicts:

- `answers`: lowercased wire name + QTYPE + QCLASS (the question as it
  arrives, case folded) -> Template, for every type present at every name.
- `names`: lowercased wire name -> NameInfo, for every name that exists,
  empty non-terminals included; a miss in `answers` that hits here is NODATA,
  and a miss in both walks up to the closest encloser for a wildcard or
  NXDOMAIN (RFC 4592 §3.3.1).

Negative replies depend on the zone and the question length only (see
`wire.render`), so each zone keeps at most two per length. Changes arrive
through `apply`, which rebuilds only the changed names and the names whose
replies include them (CNAMEs that point at them, apex NS glue), and installs
the result in one synchronous step: a query handled on the same event loop
sees the table either wholly before or wholly after a change.
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import dns.name
import dns.rdatatype

from fodns import querystats
from fodns.lookup import Outcome, Result, lookup, negative_soa
from fodns.wire import Template, refused_template, render
from fodns.zone import AAAA, CNAME, NS, A, Name, RRset, ZoneData, name_to_wire

CLASS_IN = b"\x00\x01"
ANY = int(dns.rdatatype.ANY)
# CNAME owners get prebuilt replies for the types resolvers ask for most;
# other types at a CNAME are built on first use and cached.
CNAME_PREBUILT_TYPES = (A, AAAA, CNAME)
SYNTHESIZED_CACHE_LIMIT = 20_000
WILDCARD_PREFIX = b"\x01*"
_QTYPE = struct.Struct("!H")


class NameKind(enum.IntEnum):
    PLAIN = 0  # data or an empty non-terminal: a missing type is NODATA
    CNAME = 1  # every type follows the CNAME
    DELEGATED = 2  # at or below a zone cut: replies are referrals


@dataclass(slots=True)
class NameInfo:
    kind: NameKind
    zone: ZoneRuntime


@dataclass
class ZoneRuntime:
    """What the hot path needs of a zone: its data and its negative replies by length."""

    data: ZoneData
    negatives: dict[tuple[Outcome, int], Template] = field(default_factory=dict)

    def negative(self, outcome: Outcome, qname_len: int) -> Template:
        key = (outcome, qname_len)
        template = self.negatives.get(key)
        if template is None:
            result = Result(outcome, self.data, authority=[negative_soa(self.data)])
            template = render(result, None, qname_len)
            self.negatives[key] = template
        return template


def wire_key(name: Name) -> bytes:
    """The case-folded wire form of a name: the key of `names`, prefix of `answers` keys.

    bytes.lower() folds only A-Z, exactly DNS's case-insensitivity (RFC 4343 §3);
    length octets are at most 63 and so are never changed by it.
    """
    return name_to_wire(name).lower()


class AnswerTable:
    """Prebuilt replies for a set of zones, plus the lookup for the rest."""

    def __init__(self, zones: Iterable[ZoneData]) -> None:
        self.answers: dict[bytes, Template] = {}
        self.names: dict[bytes, NameInfo] = {}
        self.zones: dict[Name, ZoneData] = {}
        self.runtimes: dict[Name, ZoneRuntime] = {}
        self.refused = refused_template()
        # Replies built on first use (wildcards, ANY, CNAMEs, referrals); cleared on change.
        self._synthesized: dict[object, Template] = {}
        # name -> names whose replies include its records (CNAME owners, the apex for glue)
        self._dependents: dict[Name, set[Name]] = {}
        self._keys_of: dict[Name, list[bytes]] = {}
        self._references_of: dict[Name, list[Name]] = {}
        for zone in sorted(zones, key=lambda z: len(z.origin)):
            if zone.origin in self.zones:
                raise ValueError(f"zone {zone.origin} is configured twice")
            self.zones[zone.origin] = zone
            self.runtimes[zone.origin] = ZoneRuntime(zone)
        for zone in self.zones.values():
            for name in zone.names:
                if self._owning_zone(name) is zone:
                    self._install(self._build_name(zone, name))

    # ---- the miss path: everything not in `answers` -------------------------

    def resolve(self, lname: bytes, qtype: int) -> Template:
        """The reply for a (case-folded, well-formed) name and type missing from `answers`."""
        qname_len = len(lname)
        info = self.names.get(lname)
        if info is not None:
            if info.kind is NameKind.PLAIN and qtype != ANY:
                return info.zone.negative(Outcome.NODATA, qname_len)
            return self._synthesize(lname, qtype)
        encloser = lname
        while True:
            encloser = encloser[encloser[0] + 1 :]
            if len(encloser) <= 1:  # reached the root: none of our zones holds the name
                return self.refused
            info = self.names.get(encloser)
            if info is not None:
                break
        if info.kind is NameKind.DELEGATED:
            return self._synthesize(lname, qtype)
        source = WILDCARD_PREFIX + encloser
        if source in self.names:
            return self._synthesize(lname, qtype, cache_key=(source, qtype, qname_len))
        return info.zone.negative(Outcome.NXDOMAIN, qname_len)

    def _synthesize(self, lname: bytes, qtype: int, cache_key: object = None) -> Template:
        """Run the full lookup and render it; cached, as the answer depends only on the key."""
        key = cache_key if cache_key is not None else lname + _QTYPE.pack(qtype)
        template = self._synthesized.get(key)
        if template is None:
            qname = dns.name.from_wire(lname, 0)[0]
            result = lookup(self.zones, qname, qtype)
            template = render(result, qname, len(lname))
            if len(self._synthesized) >= SYNTHESIZED_CACHE_LIMIT:
                self._synthesized.clear()
            self._synthesized[key] = template
        return template

    # ---- building ----------------------------------------------------------

    def _owning_zone(self, name: Name) -> ZoneData | None:
        """The deepest zone holding name: a child zone we also serve wins over its parent."""
        while True:
            zone = self.zones.get(name)
            if zone is not None:
                return zone
            if len(name) <= 1:
                return None
            name = name.parent()

    def _build_name(self, zone: ZoneData, name: Name) -> _NameBuild:
        runtime = self.runtimes[zone.origin]
        lname = wire_key(name)
        records = zone.records.get(name, {})
        build = _NameBuild(name, lname)
        if _below_cut(zone, name):
            build.info = NameInfo(NameKind.DELEGATED, runtime)
            return build
        if CNAME in records:
            build.info = NameInfo(NameKind.CNAME, runtime)
            qtypes: Iterable[int] = CNAME_PREBUILT_TYPES
            target: Name = records[CNAME][0].target
            build.references.append(target)
        else:
            build.info = NameInfo(NameKind.PLAIN, runtime)
            qtypes = records
            if name == zone.origin:
                build.references.extend(ns.target for ns in records[NS])
        # A plain name's own types are answered with just their RRset; only the apex
        # (glue) and CNAMEs (chasing) need the full lookup.
        plain = build.info.kind is NameKind.PLAIN and name != zone.origin
        for qtype in qtypes:
            if plain:
                result = Result(Outcome.ANSWER, zone, answer=[records[qtype]])
            else:
                result = lookup(self.zones, name, qtype)
            template = render(result, name, len(lname), querystats.slot(qtype, 0))
            build.templates[lname + _QTYPE.pack(qtype) + CLASS_IN] = template
        return build

    def _install(self, build: _NameBuild) -> None:
        for key in self._keys_of.pop(build.name, ()):
            self.answers.pop(key, None)
        for target in self._references_of.pop(build.name, ()):
            referers = self._dependents.get(target)
            if referers is not None:
                referers.discard(build.name)
        if build.info is None:
            self.names.pop(build.lname, None)
            return
        self.names[build.lname] = build.info
        self.answers.update(build.templates)
        self._keys_of[build.name] = list(build.templates)
        self._references_of[build.name] = build.references
        for target in build.references:
            self._dependents.setdefault(target, set()).add(build.name)

    # ---- changes -------------------------------------------------------------

    def apply(
        self, origin: Name, changes: Mapping[Name, dict[int, RRset]], serial: int | None = None
    ) -> None:
        """Replace the records at each changed name (empty dict: delete) and set the serial.

        Costs in proportion to the changed names and their dependents. If
        building fails the zone data is restored and the table is unchanged.
        """
        zone = self.zones[origin]
        saved = {name: zone.records.get(name) for name in changes}
        saved_serial = zone.serial
        affected: set[Name] = set()
        try:
            for name, rrsets in changes.items():
                if _changes_delegation(zone, name, rrsets):
                    raise _NeedsFullRebuild
                before = zone.names.copy() if _may_change_ents(zone, name, rrsets) else None
                zone.set_records(name, rrsets)
                affected.add(name)
                if before is not None:
                    affected.update(before.symmetric_difference(zone.names))
            if serial is not None:
                zone.set_serial(serial)
            affected.add(origin)
            builds = [self._build_name(zone, name) for name in self._with_dependents(affected)]
        except _NeedsFullRebuild:
            for name, rrsets in changes.items():
                zone.set_records(name, rrsets)
            if serial is not None:
                zone.set_serial(serial)
            self._rebuild_zone(zone)
            return
        except Exception:
            for name, old in saved.items():
                zone.set_records(name, old or {})
            zone.set_serial(saved_serial)
            raise
        # Install: synchronous, so no query sees half of it.
        for build in builds:
            if build.name not in zone.names:
                build.info = None
            self._install(build)
        self.runtimes[origin].negatives.clear()
        self._synthesized.clear()

    def _with_dependents(self, names: set[Name]) -> list[Name]:
        """The names plus, transitively, every name whose reply includes their records."""
        seen = set(names)
        todo = list(names)
        while todo:
            for referer in self._dependents.get(todo.pop(), ()):
                if referer not in seen:
                    seen.add(referer)
                    todo.append(referer)
        return list(seen)

    def _rebuild_zone(self, zone: ZoneData) -> None:
        """A delegation appeared or went: the kinds of whole subtrees change; rebuild the zone."""
        stale = [n for n, info in self.names.items() if info.zone.data is zone]
        for lname in stale:
            del self.names[lname]
        for name in [n for n in self._keys_of if n.is_subdomain(zone.origin)]:
            for key in self._keys_of.pop(name):
                self.answers.pop(key, None)
            for target in self._references_of.pop(name, ()):
                self._dependents.get(target, set()).discard(name)
        for name in zone.names:
            if self._owning_zone(name) is zone:
                self._install(self._build_name(zone, name))
        self.runtimes[zone.origin].negatives.clear()
        self._synthesized.clear()


@dataclass
class _NameBuild:
    name: Name
    lname: bytes
    info: NameInfo | None = None
    templates: dict[bytes, Template] = field(default_factory=dict)
    references: list[Name] = field(default_factory=list)


class _NeedsFullRebuild(Exception):
    pass


def _below_cut(zone: ZoneData, name: Name) -> bool:
    if not zone.cuts:
        return False
    ancestor = name
    while ancestor != zone.origin and len(ancestor) > len(zone.origin):
        if zone.is_cut(ancestor):
            return True
        ancestor = ancestor.parent()
    return False


def _changes_delegation(zone: ZoneData, name: Name, rrsets: Mapping[int, RRset]) -> bool:
    if name == zone.origin:
        return False
    had_ns = NS in zone.records.get(name, {})
    return had_ns or NS in rrsets or _below_cut(zone, name)


def _may_change_ents(zone: ZoneData, name: Name, rrsets: Mapping[int, RRset]) -> bool:
    """Adding or removing a name deeper than one label below the apex may add or
    remove empty non-terminals above it."""
    exists_now = name in zone.records
    return bool(rrsets) != exists_now and len(name) > len(zone.origin) + 1
