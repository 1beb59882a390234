"""Zone transfers out of fodns: AXFR over TCP (RFC 5936), signed with TSIG (RFC 8945).

A secondary asks over TCP; fodns checks the zone's `allow_transfer` list (the
peer's address, and the TSIG key when the entry names one), then streams the
zone: its SOA, every RRset (zone file and failover groups alike), the SOA
again. An IXFR is answered the same way, with the whole zone in AXFR form,
which RFC 1995 §4 allows when a server keeps no history to send.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
import dns.rrset
import dns.tsig
import dns.tsigkeyring

from fodns.config import TsigKeyConfig, ZoneConfig
from fodns.errors import ConfigError
from fodns.logs import get_logger
from fodns.table import AnswerTable
from fodns.wire import NOTAUTH, error_reply, unsigned_tsig_error
from fodns.zone import SOA, ZoneData, name_to_wire, wire_key

log = get_logger()
TRANSFER_TYPES = frozenset({dns.rdatatype.AXFR, dns.rdatatype.IXFR})
# Well under the 64 KiB TCP message limit, so a message never needs splitting again.
MESSAGE_BUDGET = 16_000


@dataclass(frozen=True)
class Allowed:
    """One `allow_transfer` entry: peers in `network`, signing with `key` if it is set."""

    network: ipaddress.IPv4Network | ipaddress.IPv6Network
    key: dns.name.Name | None

    def admits(self, peer: str, key: dns.name.Name | None) -> bool:
        address = ipaddress.ip_address(peer)
        in_network = address.version == self.network.version and address in self.network
        return in_network and (self.key is None or self.key == key)


class Transfers:
    """Answers AXFR/IXFR queries for the table the server serves now."""

    def __init__(
        self,
        table: Callable[[], AnswerTable],
        zones: list[ZoneConfig],
        keys: dict[str, TsigKeyConfig],
    ) -> None:
        self.table = table
        self.keyring = (
            dns.tsigkeyring.from_text(
                {name: (key.algorithm, key.secret) for name, key in keys.items()}
            )
            if keys
            else None
        )
        self.allowed: dict[bytes, list[Allowed]] = {}
        for zone in zones:
            entries = []
            for index, entry in enumerate(zone.allow_transfer):
                where = f"zones {zone.name} allow_transfer[{index}]"
                try:
                    network = ipaddress.ip_network(str(entry.get("address", "")), strict=False)
                except ValueError:
                    raise ConfigError(f"{where}.address: not an address or network") from None
                key_name = entry.get("key")
                if key_name is not None and key_name not in keys:
                    raise ConfigError(f"{where}.key: no [tsig.{key_name}] in the config")
                entries.append(Allowed(network, dns.name.from_text(key_name) if key_name else None))
            self.allowed[wire_key(dns.name.from_text(zone.name))] = entries

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
        if zone is None:
            return [self._refuse(query, peer, key, "not a zone of this server")]
        if not any(entry.admits(peer, key) for entry in self.allowed.get(zone.origin_key, [])):
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
