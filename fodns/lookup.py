"""The lookup: a pure function from zone data and a question to an outcome and its records.

This is RFC 1034 §4.3.2 for an authoritative-only server, with wildcards per
RFC 4592, negative answers per RFC 2308 and ANY per RFC 8482. It is used to
build the prebuilt answers of the table and to answer the rare questions the
table has no prebuilt answer for; it is never on the per-query fast path.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field

import dns.name
import dns.rdatatype
import dns.rrset

from fodns.zone import AAAA, CNAME, NS, SOA, A, Name, RRset, ZoneData

ANY = dns.rdatatype.ANY
DS = dns.rdatatype.DS
# RFC 1034 §4.3.2 step 3a restarts at a CNAME target; stop chains that loop or run long.
MAX_CNAME_CHAIN = 8
WILDCARD_LABEL = b"*"


class Outcome(enum.Enum):
    """What a question comes to; one place (the renderer) maps it to rcode and flags."""

    ANSWER = "answer"
    NODATA = "nodata"
    NXDOMAIN = "nxdomain"
    REFERRAL = "referral"
    REFUSED = "refused"


@dataclass
class Result:
    outcome: Outcome
    zone: ZoneData | None = None
    answer: list[RRset] = field(default_factory=list)
    authority: list[RRset] = field(default_factory=list)
    additional: list[RRset] = field(default_factory=list)
    # The answer was synthesised from a wildcard (its owner is the query name).
    wildcard: bool = False


def find_zone(zones: Mapping[Name, ZoneData], qname: Name) -> ZoneData | None:
    """The deepest of our zones that contains qname, or None (then we are not authoritative)."""
    name = qname
    while True:
        zone = zones.get(name)
        if zone is not None:
            return zone
        if name == dns.name.root or len(name) == 0:
            return None
        name = name.parent()


def lookup(zones: Mapping[Name, ZoneData], qname: Name, qtype: int) -> Result:
    zone = find_zone(zones, qname)
    if zone is None:
        return Result(Outcome.REFUSED)
    cut = _highest_cut(zone, qname)
    if cut is not None and not (qtype == DS and cut == qname):
        # RFC 1034 §4.3.2 step 3b: at or below a zone cut we only refer.
        return _referral(zone, cut)
    return _lookup_in_zone(zone, qname, qtype, chain=())


def _lookup_in_zone(zone: ZoneData, qname: Name, qtype: int, chain: tuple[Name, ...]) -> Result:
    if qname in zone.names:
        return _answer_at(zone, qname, qname, qtype, chain, wildcard=False)
    closest_encloser = _closest_encloser(zone, qname)
    source = dns.name.Name((WILDCARD_LABEL, *closest_encloser.labels))
    if source in zone.records:
        # RFC 4592 §3.3.1: the source of synthesis is the wildcard at the closest encloser.
        return _answer_at(zone, source, qname, qtype, chain, wildcard=True)
    return Result(Outcome.NXDOMAIN, zone, authority=[negative_soa(zone)])


def _answer_at(
    zone: ZoneData, node: Name, owner: Name, qtype: int, chain: tuple[Name, ...], wildcard: bool
) -> Result:
    """Answer from the records at `node`, written with owner `owner` (differs for wildcards)."""
    records = zone.records.get(node, {})
    cname = records.get(CNAME)
    if cname is not None and qtype not in (CNAME, ANY):
        return _follow_cname(zone, _with_owner(cname, owner), qtype, chain, wildcard)
    if qtype == ANY:
        if not records:
            return Result(Outcome.NODATA, zone, authority=[negative_soa(zone)], wildcard=wildcard)
        # RFC 8482 §4.2: answer ANY with one RRset of the responder's choosing.
        first_type = min(records)
        return Result(
            Outcome.ANSWER,
            zone,
            answer=[_with_owner(records[first_type], owner)],
            wildcard=wildcard,
        )
    rrset = records.get(qtype)
    if rrset is None:
        return Result(Outcome.NODATA, zone, authority=[negative_soa(zone)], wildcard=wildcard)
    result = Result(Outcome.ANSWER, zone, answer=[_with_owner(rrset, owner)], wildcard=wildcard)
    if qtype == NS and node == zone.origin:
        result.additional = _glue(zone, rrset, zone.origin)
    return result


def _follow_cname(
    zone: ZoneData, cname: RRset, qtype: int, chain: tuple[Name, ...], wildcard: bool
) -> Result:
    """RFC 1034 §4.3.2 step 3a: put the CNAME in the answer and restart at its target
    when the target is in this zone; RFC 6604: the rcode is that of the last name."""
    target: Name = cname[0].target
    chain = (*chain, cname.name)
    in_zone = target.is_subdomain(zone.origin) and _highest_cut(zone, target) is None
    if not in_zone or target in chain or len(chain) >= MAX_CNAME_CHAIN:
        return Result(Outcome.ANSWER, zone, answer=[cname], wildcard=wildcard)
    rest = _lookup_in_zone(zone, target, qtype, chain)
    # The chain exists whatever its end holds: NODATA and NXDOMAIN keep their SOA.
    outcome = Outcome.ANSWER if rest.outcome is Outcome.ANSWER else rest.outcome
    return Result(
        outcome,
        zone,
        answer=[cname, *rest.answer],
        authority=rest.authority,
        additional=rest.additional,
        wildcard=wildcard,
    )


def _referral(zone: ZoneData, cut: Name) -> Result:
    ns = zone.records[cut][NS]
    return Result(Outcome.REFERRAL, zone, authority=[ns], additional=_glue(zone, ns, cut))


def _glue(zone: ZoneData, ns: RRset, below: Name) -> list[RRset]:
    """Addresses of the nameservers that lie inside the zone (RFC 9471: in-domain glue)."""
    glue: list[RRset] = []
    for rdata in ns:
        target: Name = rdata.target
        if not target.is_subdomain(zone.origin):
            continue
        for rdtype in (A, AAAA):
            rrset = zone.rrset(target, rdtype)
            if rrset is not None and rrset not in glue:
                glue.append(rrset)
    return glue


def _highest_cut(zone: ZoneData, qname: Name) -> Name | None:
    """The delegation point nearest the apex on the way down to qname, if any."""
    depth = len(zone.origin)
    for count in range(depth + 1, len(qname) + 1):
        ancestor = dns.name.Name(qname.labels[-count:])
        if zone.is_cut(ancestor):
            return ancestor
    return None


def _closest_encloser(zone: ZoneData, qname: Name) -> Name:
    """RFC 4592 §3.3.1: the longest existing ancestor of qname (the apex at worst)."""
    name = qname
    while name not in zone.names and name != zone.origin:
        name = name.parent()
    return name


def negative_soa(zone: ZoneData) -> RRset:
    """RFC 2308 §3: the SOA in a negative answer has TTL min(SOA TTL, SOA MINIMUM)."""
    soa = zone.soa
    ttl = min(soa.ttl, soa[0].minimum)
    if ttl == soa.ttl:
        return soa
    negative = dns.rrset.RRset(soa.name, soa.rdclass, SOA)
    negative.update(soa)  # type: ignore[no-untyped-call]
    negative.ttl = ttl
    return negative


def _with_owner(rrset: RRset, owner: Name) -> RRset:
    if rrset.name == owner:
        return rrset
    copy = dns.rrset.RRset(owner, rrset.rdclass, rrset.rdtype)
    copy.update(rrset)  # type: ignore[no-untyped-call]
    copy.ttl = rrset.ttl
    return copy
