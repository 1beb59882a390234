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
from fodns.errors import ZoneFileError
from fodns.lookup import Outcome, Result, find_zone, highest_cut, lookup, negative_soa
from fodns.wire import CLASS_IN, Template, refused_template, render
from fodns.zone import AAAA, CNAME, NS, SOA, A, Name, RRset, ZoneData, parent_key, wire_key

ANY = int(dns.rdatatype.ANY)
# CNAME owners get prebuilt replies for the types resolvers ask for most;
# other types at a CNAME are built on first use and cached.
CNAME_PREBUILT_TYPES = (A, AAAA, CNAME)
SYNTHESIZED_CACHE_LIMIT = 20_000
MISSES_REMEMBERED = 100_000
WILDCARD_PREFIX = b"\x01*"
_QTYPE = struct.Struct("!H")
# The end of a question key (QTYPE, QCLASS IN) for the types a failover group has.
# A name whose replies are all of these types keeps no list of its answer keys
# (`_keys_of`): they are found by trying the three, which saves a list per group.
_IMPLIED_SUFFIX = {rdtype: _QTYPE.pack(rdtype) + CLASS_IN for rdtype in (A, AAAA, CNAME)}
_IMPLIED = frozenset(_IMPLIED_SUFFIX.values())


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
    # One NameInfo per kind, shared by every name of the zone (there may be 100,000).
    infos: dict[NameKind, NameInfo] = field(default_factory=dict)

    def info(self, kind: NameKind) -> NameInfo:
        shared = self.infos.get(kind)
        if shared is None:
            shared = self.infos[kind] = NameInfo(kind, self)
        return shared

    def negative(self, outcome: Outcome, qname_len: int) -> Template:
        key = (outcome, qname_len)
        template = self.negatives.get(key)
        if template is None:
            result = Result(outcome, self.data, authority=[negative_soa(self.data)])
            template = render(result, None, qname_len)
            self.negatives[key] = template
        return template


class AnswerTable:
    """Prebuilt replies for a set of zones, plus the lookup for the rest."""

    def __init__(self, zones: Iterable[ZoneData]) -> None:
        self.answers: dict[bytes, Template] = {}
        self.names: dict[bytes, NameInfo] = {}
        self.zones: dict[bytes, ZoneData] = {}
        self.runtimes: dict[bytes, ZoneRuntime] = {}
        self.refused = refused_template()
        # Replies built on first use (wildcards, ANY, CNAMEs, referrals); cleared on change.
        self._synthesized: dict[object, Template] = {}
        # Question key -> reply for questions missing from `answers` (NODATA, NXDOMAIN,
        # wildcards), filled by the query handler so that a repeated miss costs one
        # lookup; bounded, and cleared on every change like everything derived.
        self.misses: dict[bytes, Template] = {}
        # name -> names whose replies include its records (CNAME owners, the apex for glue)
        self._dependents: dict[bytes, set[bytes]] = {}
        self._keys_of: dict[bytes, list[bytes]] = {}
        self._references_of: dict[bytes, list[bytes]] = {}
        for zone in sorted(zones, key=lambda z: len(z.origin_key)):
            if zone.origin_key in self.zones:
                raise ValueError(f"zone {zone.origin} is configured twice")
            self.zones[zone.origin_key] = zone
            self.runtimes[zone.origin_key] = ZoneRuntime(zone)
        for zone in self.zones.values():
            for key in zone.names:
                if find_zone(self.zones, key) is zone:
                    self._install(self._build_name(zone, key))

    def zone(self, origin: Name) -> ZoneData:
        return self.zones[wire_key(origin)]

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

    def remember_miss(self, key: bytes, template: Template) -> None:
        if len(self.misses) >= MISSES_REMEMBERED:
            self.misses.clear()
        self.misses[key] = template

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

    def _build_name(self, zone: ZoneData, key: bytes) -> _NameBuild:
        runtime = self.runtimes[zone.origin_key]
        records = zone.records.get(key, {})
        build = _NameBuild(key)
        if highest_cut(zone, key) is not None:
            build.info = runtime.info(NameKind.DELEGATED)
            return build
        direct = getattr(records, "direct_templates", None)
        templates = direct(len(key), zone) if direct is not None else None
        if templates is not None:
            # Records that render themselves (a group's web head): no lookup, and no
            # references, as they never include other names' records.
            build.info = runtime.info(NameKind.CNAME if CNAME in records else NameKind.PLAIN)
            build.templates = {key + _QTYPE.pack(t) + CLASS_IN: tpl for t, tpl in templates.items()}
            return build
        if CNAME in records:
            build.info = runtime.info(NameKind.CNAME)
            qtypes: Iterable[int] = CNAME_PREBUILT_TYPES
            build.references.append(wire_key(records[CNAME][0].target))
        else:
            build.info = runtime.info(NameKind.PLAIN)
            qtypes = records
            if key == zone.origin_key:
                build.references.extend(wire_key(ns.target) for ns in records[NS])
        if not records:
            return build  # an empty non-terminal or an empty node: NODATA for every type
        name = next(iter(records.values())).name
        # A plain name's own types are answered with just their RRset; only the apex
        # (glue) and CNAMEs (chasing) need the full lookup.
        plain = build.info.kind is NameKind.PLAIN and key != zone.origin_key
        for qtype in qtypes:
            if plain:
                result = Result(Outcome.ANSWER, zone, answer=[records[qtype]])
            else:
                result = lookup(self.zones, name, qtype)
            template = render(result, name, len(key), querystats.slot(qtype, 0))
            build.templates[key + _QTYPE.pack(qtype) + CLASS_IN] = template
        return build

    def _build_serial(self, zone: ZoneData) -> _NameBuild:
        """The apex's build when only the serial moved: its replies as installed, with
        the SOA reply rendered again (the others, NS with its glue and the rest, do not
        hold the serial; negative answers are rendered on demand from the zone)."""
        key = zone.origin_key
        installed = self._keys_of.get(key)
        if installed is None or key not in self.names:
            return self._build_name(zone, key)
        build = _NameBuild(key)
        build.info = self.names[key]
        build.references = list(self._references_of.get(key, ()))
        build.templates = {answer_key: self.answers[answer_key] for answer_key in installed}
        result = lookup(self.zones, zone.origin, SOA)
        build.templates[key + _QTYPE.pack(SOA) + CLASS_IN] = render(
            result, zone.origin, len(key), querystats.slot(SOA, 0)
        )
        return build

    def _drop_answers(self, key: bytes) -> None:
        """Remove every prebuilt reply of the name `key`."""
        answer_keys = self._keys_of.pop(key, None)
        if answer_keys is None:  # none of other types: see _IMPLIED_SUFFIX
            answer_keys = [key + suffix for suffix in _IMPLIED_SUFFIX.values()]
        for answer_key in answer_keys:
            self.answers.pop(answer_key, None)

    def _install(self, build: _NameBuild) -> None:
        self._drop_answers(build.key)
        for target in self._references_of.pop(build.key, ()):
            referers = self._dependents.get(target)
            if referers is not None:
                referers.discard(build.key)
        if build.info is None:
            self.names.pop(build.key, None)
            return
        self.names[build.key] = build.info
        self.answers.update(build.templates)
        if any(answer_key[-4:] not in _IMPLIED for answer_key in build.templates):
            self._keys_of[build.key] = list(build.templates)
        self._references_of[build.key] = build.references
        for target in build.references:
            self._dependents.setdefault(target, set()).add(build.key)

    # ---- changes -------------------------------------------------------------

    def apply(
        self,
        origin: Name,
        changes: Mapping[Name, Mapping[int, RRset] | None],
        serial: int | None = None,
    ) -> None:
        """Replace the records at each changed name and set the serial.

        A name's new records replace all it had; None deletes the name, an empty
        dict keeps it as a name with no records (NODATA for every type). Costs in
        proportion to the changed names and their dependents. If building fails
        the zone data is restored and the table is unchanged.
        """
        zone = self.zone(origin)
        by_key: dict[bytes, Mapping[int, RRset] | None] = {}
        for name, rrsets in changes.items():
            if not name.is_subdomain(zone.origin):
                raise ZoneFileError(f"{name} is not inside zone {zone.origin}")
            by_key[wire_key(name)] = rrsets
        self.apply_by_key(zone.origin_key, by_key, serial)

    def apply_by_key(
        self,
        origin_key: bytes,
        changes: Mapping[bytes, Mapping[int, RRset] | None],
        serial: int | None = None,
    ) -> None:
        """`apply` with names given as wire keys (callers that make many, like groups)."""
        zone = self.zones[origin_key]
        saved = {key: zone.records.get(key) for key in changes}
        saved_serial = zone.serial
        affected: set[bytes] = set()
        try:
            for key, rrsets in changes.items():
                if _changes_delegation(zone, key, rrsets):
                    raise _NeedsFullRebuild
                before = zone.names.copy() if _may_change_ents(zone, key, rrsets) else None
                zone.set_records_by_key(key, rrsets)
                affected.add(key)
                if before is not None:
                    affected.update(before.symmetric_difference(zone.names))
            # Names whose replies hold a changed record, before the serial is counted.
            rebuilt = self._with_dependents(affected)
            if serial is not None:
                zone.set_serial(serial)
            builds = [self._build_held(zone, key, affected) for key in rebuilt]
            if serial is not None and zone.origin_key not in rebuilt:
                # Only the serial moved at the apex (every group change moves it): of
                # the apex's own replies only SOA holds it; the names chasing to the
                # apex (a CNAME to it) do, whole.
                builds.append((zone, self._build_serial(zone)))
                builds.extend(
                    self._build_held(zone, key, affected)
                    for key in self._with_dependents({zone.origin_key})
                    if key != zone.origin_key and key not in rebuilt
                )
        except _NeedsFullRebuild:
            for key, rrsets in changes.items():
                zone.set_records_by_key(key, rrsets)
            if serial is not None:
                zone.set_serial(serial)
            self._rebuild_zone(zone)
            return
        except Exception:
            for key, old in saved.items():
                zone.set_records_by_key(key, old)
            zone.set_serial(saved_serial)
            raise
        # Install: synchronous, so no query sees half of it.
        for holder, build in builds:
            if build.key not in holder.names:
                build.info = None
            self._install(build)
        self.runtimes[zone.origin_key].negatives.clear()
        self._synthesized.clear()
        self.misses.clear()

    def _build_held(
        self, zone: ZoneData, key: bytes, changed: set[bytes]
    ) -> tuple[ZoneData, _NameBuild]:
        """The name `key` built from the zone that holds it, and that zone: `zone` for
        the names changed in it, and for a name whose reply includes them, the zone it
        lives in, which may be another we serve (a CNAME in a child zone to its parent)."""
        holder = zone if key in changed else find_zone(self.zones, key) or zone
        return holder, self._build_name(holder, key)

    def load_by_key(
        self,
        origin_key: bytes,
        new_names: Iterable[tuple[bytes, Mapping[int, RRset] | None]],
        serial: int | None = None,
    ) -> None:
        """Start-up: add many new names whose records render themselves (groups),
        read once from an iterable of (key, records), so a caller can stream them.

        The bookkeeping `apply_by_key` keeps for changes (rollback copies, a
        dependency walk per name) is a waste when the names are new; this adds
        them directly. Anything unusual (the name exists, is not a child of the
        apex, a delegation, a reply that needs the full lookup) and the names
        whose replies include the new ones (a zone-file CNAME to a group) still go
        through `apply_by_key`.
        """
        zone = self.zones[origin_key]
        runtime = self.runtimes[origin_key]
        plain, cname = runtime.info(NameKind.PLAIN), runtime.info(NameKind.CNAME)
        answers, names, dependents = self.answers, self.names, self._dependents
        records_of, zone_names = zone.records, zone.names
        direct_allowed = not zone.cuts
        rest: dict[bytes, Mapping[int, RRset] | None] = {}
        referred: set[bytes] = set()  # loaded names that zone-file names refer to
        loaded = 0
        # Renderings are shared by many names (a group's by every group on its web
        # head): what installing one takes is worked out once per rendering, by its
        # identity; the entry holds the rendering, so no other can take its id.
        installs: dict[int, tuple[object, NameInfo, tuple[tuple[bytes, Template], ...] | None]] = {}
        for key, records in new_names:
            direct = getattr(records, "direct_templates", None)
            templates = (
                direct(len(key), zone)
                if direct is not None
                and direct_allowed
                and key[key[0] + 1 :] == origin_key
                and key not in zone_names
                else None
            )
            if templates is None or records is None:
                rest[key] = records
                continue
            install = installs.get(id(templates))
            if install is None:
                implied = templates.keys() <= _IMPLIED_SUFFIX.keys()
                install = installs[id(templates)] = (
                    templates,
                    cname if CNAME in templates else plain,
                    tuple((_IMPLIED_SUFFIX[t], tpl) for t, tpl in templates.items())
                    if implied
                    else None,
                )
            # What set_records_by_key does for a new child of the apex, its count aside.
            records_of[key] = records
            zone_names.add(key)
            _, info, suffixed = install
            names[key] = info
            if suffixed is not None:
                for suffix, template in suffixed:
                    answers[key + suffix] = template
            else:
                entries = {key + _QTYPE.pack(t) + CLASS_IN: tpl for t, tpl in templates.items()}
                answers.update(entries)
                self._keys_of[key] = list(entries)
            if key in dependents:
                referred.add(key)
            loaded += 1
        zone.count_new_children(loaded)
        for referer in set(self._with_dependents(referred)) - referred:
            rest.setdefault(referer, zone.records.get(referer))
        self.apply_by_key(origin_key, rest, serial)

    def _with_dependents(self, keys: set[bytes]) -> list[bytes]:
        """The names plus, transitively, every name whose reply includes their records."""
        seen = set(keys)
        todo = list(keys)
        while todo:
            for referer in self._dependents.get(todo.pop(), ()):
                if referer not in seen:
                    seen.add(referer)
                    todo.append(referer)
        return list(seen)

    def _rebuild_zone(self, zone: ZoneData) -> None:
        """A delegation appeared or went: the kinds of whole subtrees change; rebuild the zone."""
        stale = [key for key, info in self.names.items() if info.zone.data is zone]
        for key in stale:
            del self.names[key]
            self._drop_answers(key)
            for target in self._references_of.pop(key, ()):
                self._dependents.get(target, set()).discard(key)
        for key in zone.names:
            if find_zone(self.zones, key) is zone:
                self._install(self._build_name(zone, key))
        self.runtimes[zone.origin_key].negatives.clear()
        self._synthesized.clear()
        self.misses.clear()


class _NameBuild:
    """What building one name produced, before it is installed."""

    __slots__ = ("info", "key", "references", "templates")

    def __init__(self, key: bytes) -> None:
        self.key = key
        self.info: NameInfo | None = None
        self.templates: dict[bytes, Template] = {}
        self.references: list[bytes] = []


class _NeedsFullRebuild(Exception):
    """Control flow inside AnswerTable.apply, never an error: raised and caught there.
    Not a FodnsError, so no `except FodnsError` elsewhere could ever swallow it."""


def _changes_delegation(zone: ZoneData, key: bytes, rrsets: Mapping[int, RRset] | None) -> bool:
    if key == zone.origin_key:
        return False
    had_ns = NS in zone.records.get(key, {})
    return had_ns or NS in (rrsets or {}) or highest_cut(zone, key) is not None


def _may_change_ents(zone: ZoneData, key: bytes, rrsets: Mapping[int, RRset] | None) -> bool:
    """Adding or removing a node deeper than one label below the apex may add or
    remove empty non-terminals above it."""
    exists_now = key in zone.records
    return (rrsets is not None) != exists_now and parent_key(key) != zone.origin_key
