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

import dns.rdatatype
import dns.rrset

from fodns.zone import (
    AAAA,
    CNAME,
    NS,
    SOA,
    A,
    Name,
    RRset,
    ZoneData,
    is_at_or_below,
    parent_key,
    wire_key,
)

ANY = dns.rdatatype.ANY
DS = dns.rdatatype.DS
# RFC 1034 §4.3.2 step 3a restarts at a CNAME target; stop chains that loop or run long.
MAX_CNAME_CHAIN = 8
WILDCARD_PREFIX = b"\x01*"  # the wire form of a leading "*" label


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


def find_zone(zones: Mapping[bytes, ZoneData], qkey: bytes) -> ZoneData | None:
    """The deepest of our zones that contains the name, or None (then we are not authoritative)."""
    key = qkey
    while True:
        zone = zones.get(key)
        if zone is not None:
            return zone
        if len(key) <= 1:
            return None
        key = parent_key(key)


def lookup(zones: Mapping[bytes, ZoneData], qname: Name, qtype: int) -> Result:
    qkey = wire_key(qname)
    zone = find_zone(zones, qkey)
    if zone is None:
        return Result(Outcome.REFUSED)
    cut = highest_cut(zone, qkey)
    if cut is not None and not (qtype == DS and cut == qkey):
        # RFC 1034 §4.3.2 step 3b: at or below a zone cut we only refer.
        return _referral(zone, cut)
    return _lookup_in_zone(zone, qname, qkey, qtype, chain=())


def _lookup_in_zone(
    zone: ZoneData, qname: Name, qkey: bytes, qtype: int, chain: tuple[bytes, ...]
) -> Result:
    if qkey in zone.names:
        return _answer_at(zone, qkey, qname, qtype, chain, wildcard=False)
    source = WILDCARD_PREFIX + _closest_encloser(zone, qkey)
    if source in zone.records:
        # RFC 4592 §3.3.1: the source of synthesis is the wildcard at the closest encloser.
        return _answer_at(zone, source, qname, qtype, chain, wildcard=True)
    return Result(Outcome.NXDOMAIN, zone, authority=[negative_soa(zone)])


def _answer_at(
    zone: ZoneData, node: bytes, owner: Name, qtype: int, chain: tuple[bytes, ...], wildcard: bool
) -> Result:
    """Answer from the records at `node`, written with owner `owner` (differs for wildcards)."""
    records = zone.records.get(node, {})
    cname = records.get(CNAME)
    if cname is not None and qtype not in (CNAME, ANY):
        return _follow_cname(zone, _with_owner(cname, owner), node, qtype, chain, wildcard)
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
    if qtype == NS and node == zone.origin_key:
        result.additional = _glue(zone, rrset)
    return result


def _follow_cname(
    zone: ZoneData,
    cname: RRset,
    node: bytes,
    qtype: int,
    chain: tuple[bytes, ...],
    wildcard: bool,
) -> Result:
    """RFC 1034 §4.3.2 step 3a: put the CNAME in the answer and restart at its target
    when the target is in this zone; RFC 6604: the rcode is that of the last name."""
    target: Name = cname[0].target
    target_key = wire_key(target)
    chain = (*chain, node)
    in_zone = is_at_or_below(target_key, zone.origin_key) and highest_cut(zone, target_key) is None
    if not in_zone or target_key in chain or len(chain) >= MAX_CNAME_CHAIN:
        return Result(Outcome.ANSWER, zone, answer=[cname], wildcard=wildcard)
    rest = _lookup_in_zone(zone, target, target_key, qtype, chain)
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


def _referral(zone: ZoneData, cut: bytes) -> Result:
    ns = zone.records[cut][NS]
    return Result(Outcome.REFERRAL, zone, authority=[ns], additional=_glue(zone, ns))


def _glue(zone: ZoneData, ns: RRset) -> list[RRset]:
    """Addresses of the nameservers that lie inside the zone (RFC 9471: in-domain glue)."""
    glue: list[RRset] = []
    for rdata in ns:
        target_key = wire_key(rdata.target)
        if not is_at_or_below(target_key, zone.origin_key):
            continue
        for rdtype in (A, AAAA):
            rrset = zone.rrset(target_key, rdtype)
            if rrset is not None and rrset not in glue:
                glue.append(rrset)
    return glue


def highest_cut(zone: ZoneData, key: bytes) -> bytes | None:
    """The delegation point nearest the apex on the way down to the name, if any."""
    if not zone.cuts:
        return None
    highest = None
    while len(key) > len(zone.origin_key):
        if key in zone.cuts:
            highest = key
        key = parent_key(key)
    return highest


def _closest_encloser(zone: ZoneData, key: bytes) -> bytes:
    """RFC 4592 §3.3.1: the longest existing ancestor of the name (the apex at worst)."""
    while key not in zone.names and key != zone.origin_key:
        key = parent_key(key)
    return key


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
