"""Response rate limiting (RRL): how many identical UDP replies one source network gets.

An authoritative server answers whoever a UDP query claims to come from, so a
query with a forged source address makes it a reflector aimed at the owner of
that address, with replies larger than the queries. RRL (NSD's `rrl-*`
options, Knot DNS's `mod-rrl`, BIND's `rate-limit`) caps how many identical
replies one source network gets a second. The victim of a reflection gets at
most that many; real clients are rarely hurt, since what they ask varies and a
resolver caches what it got, and those that are can retry over TCP, which a
forged source cannot complete (TCP is never limited).

Networks are the source address cut to a prefix (/24 for IPv4, /56 for IPv6 by
default). What counts as identical follows the classification of Knot's and
NSD's RRL:

    reply                                   counted per network and
    answer, NODATA                          question (name and type)
    NXDOMAIN, or synthesised from a wildcard zone
    referral                                delegation point
    REFUSED, FORMERR, NOTIMP, other errors  nothing more: one count

so a flood of random names under one zone counts as one, and a network's
other questions keep their own allowance. The `limit key` of a reply says
which: b"" for "the question" (the answer table's key for it, which the query
handler already holds), else a tag byte and a name. Tags are bytes no wire name
can begin with (a label length is below 64, RFC 1035 §3.1), so the two kinds
never collide.

Over the limit a reply is dropped, except every `slip`-th one, which goes out
as a bare truncated reply (TC=1, the question, no records) so that a real
client behind the network asks again over TCP.

Counting is a dict from (network, limit key) to replies sent in the current
second, started afresh each second: a token bucket of `rate` tokens refilled
once a second, for one dict read and one write per reply. It is bounded: once
it holds `table_size` pairs, pairs not in it go uncounted until the next second
(a flood that large fails open, as the forced reuse of a bucket does in Knot's
and NSD's fixed tables). Each worker process counts on its own, as each NSD
server process does; SO_REUSEPORT sends every datagram of one source address
and port to the same worker.

Sources are plain integers so the hot path never builds an address object: an
IPv4 address is its four bytes read as one native-endian integer (what a
32-bit view over the kernel's sockaddr gives), an IPv6 address its two halves
read the same way, the second shifted by 64, with bit 128 set. Masks and exempt
networks are converted to the same form once.
"""

from __future__ import annotations

import ipaddress
import socket
import sys

import dns.name
import dns.rdatatype

from fodns import querystats
from fodns.config import Network, RateLimitConfig
from fodns.logs import get_logger
from fodns.lookup import Outcome, Result
from fodns.zone import wire_key

log = get_logger()

PASS, DROP, SLIP = 0, 1, 2
IPV6 = 1 << 128  # set in every IPv6 source, so no IPv4 source equals one
_HALF = (1 << 64) - 1

NXDOMAIN_TAG = b"\xf1"
WILDCARD_TAG = b"\xf2"
REFERRAL_TAG = b"\xf3"
ERROR_KEY = b"\xf4"
_KIND_OF_TAG = {NXDOMAIN_TAG: "nxdomain", WILDCARD_TAG: "wildcard", REFERRAL_TAG: "referral"}
# "Network started being limited" lines per second at most; the rest are counted.
LOG_STARTS_PER_SECOND = 10
TABLE_FULL_WARNING_INTERVAL = 60  # seconds


def classify(result: Result) -> bytes:
    """The limit key of a prebuilt reply (see the module's table)."""
    if result.outcome is Outcome.REFUSED or result.zone is None:
        return ERROR_KEY
    if result.outcome is Outcome.NXDOMAIN:
        return NXDOMAIN_TAG + result.zone.origin_key
    if result.wildcard:
        return WILDCARD_TAG + result.zone.origin_key
    if result.outcome is Outcome.REFERRAL and result.authority:
        return REFERRAL_TAG + wire_key(result.authority[0].name)
    return b""  # per question


# ---- sources as integers ----------------------------------------------------------------


def ipv4_source(packed: bytes) -> int:
    return int.from_bytes(packed, sys.byteorder)


def ipv6_source(packed: bytes) -> int:
    low = int.from_bytes(packed[:8], sys.byteorder)
    return low | int.from_bytes(packed[8:16], sys.byteorder) << 64 | IPV6


def host_source(host: str) -> int:
    """The source of a peer given as text (the DatagramProtocol path)."""
    if ":" in host:
        return ipv6_source(socket.inet_pton(socket.AF_INET6, host.partition("%")[0]))
    return ipv4_source(socket.inet_pton(socket.AF_INET, host))


def prefix_mask(length: int, version: int) -> int:
    """The mask that keeps the first `length` bits of an address, as a source integer."""
    bits = 32 if version == 4 else 128
    packed = (((1 << length) - 1) << (bits - length)).to_bytes(bits // 8, "big")
    return ipv4_source(packed) if version == 4 else ipv6_source(packed)


def network_text(network: int, length: int) -> str:
    """A counted network as `address/length`, for logs."""
    if network < IPV6:
        return f"{ipaddress.IPv4Address(network.to_bytes(4, sys.byteorder))}/{length}"
    packed = (network & _HALF).to_bytes(8, sys.byteorder)
    packed += (network >> 64 & _HALF).to_bytes(8, sys.byteorder)
    return f"{ipaddress.IPv6Address(packed)}/{length}"


def describe(limit_key: bytes) -> dict[str, str]:
    """What a limit key counts, for logs."""
    if limit_key == ERROR_KEY:
        return {"response": "error"}
    kind = _KIND_OF_TAG.get(limit_key[:1])
    if kind is not None:
        return {"response": kind, "name": _name_text(limit_key[1:])}
    qtype = int.from_bytes(limit_key[-4:-2], "big")
    return {
        "response": "question",
        "name": _name_text(limit_key[:-4]),
        "qtype": dns.rdatatype.to_text(dns.rdatatype.RdataType.make(qtype)),
    }


def _name_text(wire: bytes) -> str:
    try:
        return str(dns.name.from_wire(wire, 0)[0])
    except Exception:  # a log line must never cost the reply
        return wire.hex()


# ---- the limiter ------------------------------------------------------------------------


class ResponseRateLimiter:
    """One worker's counts; `judge` each UDP reply, `new_second` at least once a second."""

    def __init__(self, config: RateLimitConfig, counters: list[int]) -> None:
        self.rate = config.responses_per_second
        self.slip = config.slip
        self.table_size = config.table_size
        self.ipv4_prefix = config.ipv4_prefix
        self.ipv6_prefix = config.ipv6_prefix
        self.ipv4_mask = prefix_mask(config.ipv4_prefix, 4)
        self.ipv6_mask = prefix_mask(config.ipv6_prefix, 6)
        self.exempt_ipv4 = tuple(_exempt(n) for n in config.exempt if n.version == 4)
        self.exempt_ipv6 = tuple(_exempt(n) for n in config.exempt if n.version == 6)
        # The first exempt network of each family is checked inline (the default
        # has one per family), the others only when there are any; (0, 1) never
        # matches.
        self.exempt_first_ipv4 = self.exempt_ipv4[0] if self.exempt_ipv4 else (0, 1)
        self.exempt_more_ipv4 = len(self.exempt_ipv4) > 1
        self.exempt_first_ipv6 = self.exempt_ipv6[0] if self.exempt_ipv6 else (0, 1)
        self.exempt_more_ipv6 = len(self.exempt_ipv6) > 1
        self.counters = counters  # the query handler's: reported like the rest
        self.second = -1
        self.sent: dict[tuple[int, bytes], int] = {}
        self.limited: set[int] = set()  # networks over the limit this second
        self.limited_before: set[int] = set()  # ...and in the second before
        self.starts_logged = 0
        self.starts_unlogged = 0
        self.table_full = False
        self.table_full_warned = -TABLE_FULL_WARNING_INTERVAL

    def judge(self, source: int, limit_key: bytes) -> int:
        """PASS, DROP or SLIP for a reply of kind `limit_key` to `source`.

        batchio writes this out in its loop (a call would cost as much as the
        counting); both leave the rare cases to `first_reply` and `over_limit`.
        """
        if source < IPV6:
            (mask, value), more = self.exempt_first_ipv4, self.exempt_more_ipv4
            pair = (source & self.ipv4_mask, limit_key)
        else:
            (mask, value), more = self.exempt_first_ipv6, self.exempt_more_ipv6
            pair = (source & self.ipv6_mask, limit_key)
        if source & mask == value or (more and self.exempt(source)):
            return PASS
        sent = self.sent.get(pair)
        if sent is None:
            return self.first_reply(pair)
        if sent < self.rate:
            self.sent[pair] = sent + 1
            return PASS
        return self.over_limit(pair, sent + 1)

    def exempt(self, source: int) -> bool:
        for mask, value in self.exempt_ipv4 if source < IPV6 else self.exempt_ipv6:
            if source & mask == value:
                return True
        return False

    def first_reply(self, pair: tuple[int, bytes]) -> int:
        """The first reply of a (network, limit key) pair this second: counted from 1,
        or, with the table full, not counted."""
        if len(self.sent) >= self.table_size:
            self.table_full = True  # uncounted until the next second
            return PASS
        self.sent[pair] = 1
        return PASS if self.rate >= 1 else self.over_limit(pair, 1)

    def over_limit(self, pair: tuple[int, bytes], sent: int) -> int:
        """The `sent`-th reply of this second for `pair`, over the limit: DROP or SLIP."""
        self.sent[pair] = sent
        network, limit_key = pair
        excess = sent - self.rate
        if excess == 1 and network not in self.limited:
            self.limited.add(network)
            if network not in self.limited_before:
                self._log_start(network, limit_key)
        if self.slip and excess % self.slip == 0:
            self.counters[querystats.RRL_SLIPPED] += 1
            return SLIP
        self.counters[querystats.RRL_DROPPED] += 1
        return DROP

    def _log_start(self, network: int, limit_key: bytes) -> None:
        if self.starts_logged >= LOG_STARTS_PER_SECOND:
            self.starts_unlogged += 1
            return
        self.starts_logged += 1
        length = self.ipv4_prefix if network < IPV6 else self.ipv6_prefix
        log.warning(
            "rrl_limiting_started",
            network=network_text(network, length),
            responses_per_second=self.rate,
            slip=self.slip,
            **describe(limit_key),
        )

    def new_second(self, second: int) -> None:
        """Start the counts afresh when `second` (a monotonic clock's) is a new one."""
        if second == self.second:
            return
        self.second = second
        self.sent = {}
        self.counters[querystats.RRL_LIMITED_PREFIXES] = len(self.limited)
        self.limited_before, self.limited = self.limited, set()
        self.starts_logged = 0
        if self.starts_unlogged:
            log.warning("rrl_limiting_started_unlogged", networks=self.starts_unlogged)
            self.starts_unlogged = 0
        if self.table_full:
            self.table_full = False
            if second - self.table_full_warned >= TABLE_FULL_WARNING_INTERVAL:
                self.table_full_warned = second
                log.warning(
                    "rrl_table_full",
                    table_size=self.table_size,
                    effect="replies to networks not yet counted that second went unlimited",
                )


def _exempt(network: Network) -> tuple[int, int]:
    mask = prefix_mask(network.prefixlen, network.version)
    packed = network.network_address.packed
    source = ipv4_source(packed) if network.version == 4 else ipv6_source(packed)
    return mask, source & mask
