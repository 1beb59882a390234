"""Zone transfers out of fodns: AXFR over TCP (RFC 5936), signed with TSIG (RFC 8945).

A secondary asks over TCP; fodns checks the zone's `allow_transfer` list (the
peer's address, and the TSIG key when the entry names one), then streams the
zone: its SOA, every RRset (zone file and failover groups alike), the SOA
again. An IXFR is answered the same way, with the whole zone in AXFR form,
which RFC 1995 §4 allows when a server keeps no history to send.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
import dns.rrset
import dns.tsig
import dns.tsigkeyring

from fodns.config import TransferPeer, TsigKeyConfig, ZoneConfig
from fodns.logs import get_logger
from fodns.table import AnswerTable
from fodns.wire import NOTAUTH, error_reply, unsigned_tsig_error
from fodns.zone import SOA, ZoneData, name_to_wire, wire_key

log = get_logger()
TRANSFER_TYPES = frozenset({dns.rdatatype.AXFR, dns.rdatatype.IXFR})
# Well under the 64 KiB TCP message limit, so a message never needs splitting again.
MESSAGE_BUDGET = 16_000


def tsig_keyring(keys: dict[str, TsigKeyConfig]) -> dict[dns.name.Name, Any] | None:
    """The configured TSIG keys as dnspython wants them, or None when there are none."""
    if not keys:
        return None
    return dns.tsigkeyring.from_text({n: (k.algorithm, k.secret) for n, k in keys.items()})


class Transfers:
    """Answers AXFR/IXFR queries for the table the server serves now."""

    def __init__(
        self,
        table: Callable[[], AnswerTable],
        zones: list[ZoneConfig],
        keys: dict[str, TsigKeyConfig],
    ) -> None:
        self.table = table
        self.keyring = tsig_keyring(keys)
        self.allowed: dict[bytes, list[TransferPeer]] = {
            wire_key(dns.name.from_text(zone.name)): zone.allow_transfer for zone in zones
        }

    def answer(self, wire: bytes, peer: str) -> list[bytes]:
        """Every message of the reply to one transfer query (empty: close the connection)."""
        try:
            query = dns.message.from_wire(wire, keyring=self.keyring or False)
        except dns.message.UnknownTSIGKey:
            return [_tsig_error(wire, dns.rcode.BADKEY)]
        except (dns.tsig.BadSignature, dns.tsig.BadTime):
            return [_tsig_error(wire, dns.rcode.BADSIG)]
        except dns.exception.DNSException:
            return []
        question = query.question[0]
        zone = self.table().zones.get(wire_key(question.name))
        key = query.keyname if query.had_tsig else None
        key_name = key.to_text(omit_final_dot=True) if key else None
        if zone is None:
            return [self._refuse(query, peer, key, "not a zone of this server")]
        if not any(p.admits(peer, key_name) for p in self.allowed.get(zone.origin_key, [])):
            return [self._refuse(query, peer, key, "peer or key not in allow_transfer")]
        messages = list(_stream(query, zone))
        log.info(
            "zone_transferred",
            zone=zone.origin.to_text(),
            peer=peer,
            key=key.to_text() if key else None,
            serial=zone.serial,
            type=dns.rdatatype.to_text(question.rdtype),
            messages=len(messages),
        )
        return messages

    @staticmethod
    def _refuse(
        query: dns.message.Message, peer: str, key: dns.name.Name | None, why: str
    ) -> bytes:
        log.warning(
            "transfer_refused",
            zone=query.question[0].name.to_text(),
            peer=peer,
            key=key.to_text() if key else None,
            reason=why,
        )
        response = dns.message.make_response(query)
        response.set_rcode(dns.rcode.REFUSED)
        return response.to_wire()


def _stream(query: dns.message.Message, zone: ZoneData) -> Iterator[bytes]:
    """SOA, every other RRset, SOA (RFC 5936 §2.2), in messages signed as one stream."""
    rrsets = [zone.soa, *_all_rrsets(zone), zone.soa]
    batch: list[dns.rrset.RRset] = []
    size = 0
    tsig_context = None
    for index, rrset in enumerate(rrsets):
        batch.append(rrset)
        size += sum(len(rdata.to_digestable()) + 32 for rdata in rrset)
        if size >= MESSAGE_BUDGET or index == len(rrsets) - 1:
            response = dns.message.make_response(query)
            response.flags |= dns.flags.AA
            response.answer = batch
            yield response.to_wire(multi=True, tsig_ctx=tsig_context)
            tsig_context = response.tsig_ctx
            batch, size = [], 0


def _all_rrsets(zone: ZoneData) -> Iterator[dns.rrset.RRset]:
    for records in zone.records.values():
        for rdtype in records:
            if rdtype != SOA:
                yield records[rdtype]


def _tsig_error(wire: bytes, error: int) -> bytes:
    """NOTAUTH with an unsigned TSIG carrying the error (RFC 8945 §5.2)."""
    query = dns.message.from_wire(wire, keyring=False)
    assert query.keyname is not None and query.tsig is not None
    tsig = unsigned_tsig_error(query.keyname, query.tsig[0], error)
    question = query.question[0]
    question_wire = name_to_wire(question.name) + question.rdtype.to_bytes(2, "big") + b"\x00\x01"
    return error_reply(wire, NOTAUTH, question_wire, b"", tsig)
