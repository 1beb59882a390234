"""ACME challenges in the answer table: each challenge name's TXT records, installed like a
group's answer, from the store at start and as the log says they moved.

A challenge name (`<subdomain>.<label>.<zone>`, fodns/acme.py) is an ordinary name of
its zone with one TXT RRset of up to two records, one string each: the table answers
it as any zone-file name, AXFR carries it with the rest of the zone, and the journal
(fodns/journal.py) carries its changes to IXFR. A name with no values is removed, so
it is NXDOMAIN here as on every secondary. The label above the names
(`<label>.<zone>`) is then an empty non-terminal, which the table keeps as it keeps
any other (RFC 4592 §2.2.2).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping

import dns.name
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.TXT
import dns.rrset

from fodns.model import ChallengeRecords
from fodns.table import AnswerTable
from fodns.zone import RRset, wire_key

TXT = dns.rdatatype.TXT
IN = dns.rdataclass.IN


def challenge_rrsets(records: ChallengeRecords) -> dict[int, RRset] | None:
    """The name's records as the table takes them: one TXT RRset; None: no name."""
    if not records.values:
        return None
    rrset = dns.rrset.RRset(dns.name.from_text(records.fqdn), IN, TXT)
    for value in records.values:
        rrset.add(dns.rdtypes.ANY.TXT.TXT(IN, TXT, [value.encode("ascii")]), records.ttl)
    return {int(TXT): rrset}


def apply_challenges(table: AnswerTable, challenges: Iterable[ChallengeRecords]) -> None:
    """Install each challenge name's records as they are now (none: remove the name),
    zone by zone; zones the table does not serve are skipped. The serial is not
    touched here: it moves with the rest of what the same events touched."""
    by_zone: dict[bytes, dict[bytes, Mapping[int, RRset] | None]] = defaultdict(dict)
    for records in challenges:
        origin_key = wire_key(dns.name.from_text(records.zone))
        zone = table.zones.get(origin_key)
        if zone is None:
            continue
        name = dns.name.from_text(records.fqdn)
        if not name.is_subdomain(zone.origin) or name == zone.origin:
            continue  # a row edited by hand: never outside its zone, never its apex
        by_zone[origin_key][wire_key(name)] = challenge_rrsets(records)
    for origin_key, changes in by_zone.items():
        table.apply_by_key(origin_key, changes)
