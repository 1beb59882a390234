"""Per-query counters cheap enough for the hot path: one list index bump per reply
(and a few per TCP connection).

Counters are plain integers in a flat list, slot = qtype bucket x rcode bucket,
so the hot path never calls into a metrics library; the metrics module turns
them into Prometheus samples when scraped. Labels are bounded: an unlisted
qtype counts as `other`, an unlisted rcode too.
"""

from __future__ import annotations

import dns.rcode
import dns.rdatatype

COUNTED_QTYPES: tuple[str, ...] = (
    "A",
    "AAAA",
    "CNAME",
    "NS",
    "SOA",
    "MX",
    "TXT",
    "SRV",
    "PTR",
    "CAA",
    "HTTPS",
    "SVCB",
    "DS",
    "DNSKEY",
    "ANY",
    "AXFR",
    "IXFR",
)
COUNTED_RCODES: tuple[str, ...] = (
    "NOERROR",
    "FORMERR",
    "SERVFAIL",
    "NXDOMAIN",
    "NOTIMP",
    "REFUSED",
    "NOTAUTH",
    "BADVERS",
)
QTYPE_LABELS: tuple[str, ...] = (*COUNTED_QTYPES, "other")
RCODE_LABELS: tuple[str, ...] = (*COUNTED_RCODES, "other")
_OTHER_QTYPE = len(COUNTED_QTYPES)
_OTHER_RCODE = len(COUNTED_RCODES)

QTYPE_BUCKET: dict[int, int] = {
    int(dns.rdatatype.from_text(name)): index for index, name in enumerate(COUNTED_QTYPES)
}
RCODE_BUCKET: dict[int, int] = {
    int(dns.rcode.from_text(name)): index for index, name in enumerate(COUNTED_RCODES)
}
SLOTS = len(QTYPE_LABELS) * len(RCODE_LABELS)
DROPPED = SLOTS  # one extra slot: queries dropped without a reply
# Time from a batch's arrival to its replies leaving, counted once per query in
# the batch: upper bounds in seconds (the last slot is +Inf).
LATENCY_BOUNDS: tuple[float, ...] = (
    0.00005,
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.1,
)
LATENCY_BASE = DROPPED + 1
LATENCY_SUM = LATENCY_BASE + len(LATENCY_BOUNDS) + 1  # microseconds, summed over queries
# TCP connections the server closed (or refused), by why: bumped per connection, never
# per query. See fodns.tcp for what each reason means.
TCP_CLOSE_REASONS: tuple[str, ...] = (
    "idle",
    "message_timeout",
    "write_timeout",
    "evicted",
    "source_cap",
    "total_cap",
)
TCP_CLOSED: dict[str, int] = {
    reason: LATENCY_SUM + 1 + index for index, reason in enumerate(TCP_CLOSE_REASONS)
}
TCP_OPEN = LATENCY_SUM + 1 + len(TCP_CLOSE_REASONS)  # a gauge: connections open now
# Records no zone transfer message could hold (see transfer.py). Counted here, not
# in a Prometheus counter, because transfers run in the DNS workers, whose only
# channel to /metrics is this list.
TRANSFER_RECORDS_LEFT_OUT = TCP_OPEN + 1
# Response rate limiting (see rrl): replies dropped, replies sent truncated instead
# ("slipped"), and a gauge: source networks over the limit in the last second.
RRL_DROPPED = TRANSFER_RECORDS_LEFT_OUT + 1
RRL_SLIPPED = RRL_DROPPED + 1
RRL_LIMITED_PREFIXES = RRL_SLIPPED + 1


def latency_bucket(seconds: float) -> int:
    for index, bound in enumerate(LATENCY_BOUNDS):
        if seconds <= bound:
            return LATENCY_BASE + index
    return LATENCY_BASE + len(LATENCY_BOUNDS)


def slot(qtype: int, rcode: int) -> int:
    return QTYPE_BUCKET.get(qtype, _OTHER_QTYPE) * len(RCODE_LABELS) + RCODE_BUCKET.get(
        rcode, _OTHER_RCODE
    )


def new_counters() -> list[int]:
    return [0] * (RRL_LIMITED_PREFIXES + 1)


def labelled(counters: list[int]) -> list[tuple[str, str, int]]:
    """(qtype, rcode, count) for every non-zero slot."""
    rows = []
    for index in range(SLOTS):
        if counters[index]:
            qtype_index, rcode_index = divmod(index, len(RCODE_LABELS))
            rows.append((QTYPE_LABELS[qtype_index], RCODE_LABELS[rcode_index], counters[index]))
    return rows
