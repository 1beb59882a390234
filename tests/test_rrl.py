"""Response rate limiting on a real `fodns serve`: floods from distinct loopback /24s.

Linux routes all of 127.0.0.0/8 to the loopback interface, so a client socket
bound to 127.0.5.1 and one bound to 127.0.6.1 are two sources in two /24s. The
tests set `rrl_exempt = []` (loopback is exempt by default) and a low limit, send
a burst far over it, and count what comes back. A burst takes milliseconds, but
may straddle the start of a second, when the counts start afresh: so a source
may get up to twice the limit, never more.
"""

from __future__ import annotations

import asyncio
import random
import re
import socket
import string
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import pytest

from fodns import querystats
from fodns.config import RateLimitConfig
from fodns.query import QueryHandler
from fodns.rrl import DROP, ERROR_KEY, PASS, ResponseRateLimiter, ipv4_source
from fodns.server import UdpProtocol
from fodns.table import AnswerTable
from fodns.zone import load_zone_file
from tests.support import (
    EXAMPLE_ZONE,
    REPOSITORY,
    FodnsProcess,
    loopback_v6_available,
    start_fodns,
    wait_for,
    write_config,
)

LIMIT = 20
SLIP = 2
FLOOD = 200
NAME = "www.fo.example.net"
WWW_ADDRESSES = {"192.0.2.10", "192.0.2.11"}


StartFodns = Callable[..., FodnsProcess]  # the fodns_factory fixture
TOKEN = "rrl-tests-admin-token"


def rrl_settings(rate: int = LIMIT, slip: int = SLIP, exempt: str = "[]", extra: str = "") -> str:
    """[dns] lines for a low limit with nothing exempt (loopback is exempt by default)."""
    return f"rrl_responses_per_second = {rate}\nrrl_slip = {slip}\nrrl_exempt = {exempt}\n{extra}"


def rrl_config(tmp_path: Path, settings: str = "") -> Path:
    return write_config(
        tmp_path, [("fo.example.net", EXAMPLE_ZONE)], dns_extra=rrl_settings(extra=settings)
    )


def source_socket(address: str, family: int = socket.AF_INET) -> socket.socket:
    """A client socket with a source address of its own and room for a burst of replies."""
    sock = socket.socket(family, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2 * 1024 * 1024)
    sock.bind((address, 0))
    return sock


def query_wire(qid: int, name: str = NAME, qtype: str = "A") -> bytes:
    query = dns.message.make_query(name, qtype)
    query.id = qid
    return query.to_wire()


def receive_all(sock: socket.socket, quiet: float = 0.5, timeout: float = 10.0) -> list[bytes]:
    """Every reply until none has come for `quiet` seconds (at most `timeout`)."""
    replies: list[bytes] = []
    sock.settimeout(quiet)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            replies.append(sock.recv(65535))
        except TimeoutError:
            break
    return replies


def split(replies: list[bytes]) -> tuple[list[dns.message.Message], list[dns.message.Message]]:
    """(full replies, truncated "slipped" replies)."""
    messages = [dns.message.from_wire(reply) for reply in replies]
    full = [m for m in messages if not m.flags & dns.flags.TC]
    slipped = [m for m in messages if m.flags & dns.flags.TC]
    return full, slipped


def addresses(reply: dns.message.Message) -> set[str]:
    return {rdata.address for rdata in reply.answer[0]}


def metric(server: FodnsProcess, name: str) -> float:
    text = server.http_get("/metrics")[1]
    found = re.search(rf"^{name} (\S+)$", text, re.MULTILINE)
    return float(found.group(1)) if found else -1.0


def assert_limited(full: list[dns.message.Message], slipped: list[dns.message.Message]) -> None:
    """At most the limit per second (two seconds at most for one burst), and of the
    rest, every SLIP-th one slipped (give or take one per second)."""
    assert LIMIT <= len(full) <= 2 * LIMIT, f"{len(full)} full replies for limit {LIMIT}"
    over = FLOOD - len(full)
    assert over // SLIP - 1 <= len(slipped) <= over // SLIP + 1, (len(full), len(slipped))


def test_a_flood_gets_the_limit_and_slips_while_another_network_keeps_its_answers(
    fodns_factory: StartFodns, workers: int
) -> None:
    running = fodns_factory(TOKEN, workers=workers, dns_extra=rrl_settings())
    flood = source_socket("127.0.5.1")
    other = source_socket("127.0.6.1")
    try:
        other_ids = set()
        for qid in range(FLOOD):
            flood.sendto(query_wire(qid), (running.dns_host, running.dns_port))
            if qid % 20 == 0:  # 10 queries from another /24, well under its own limit
                other_ids.add(1000 + qid)
                other.sendto(query_wire(1000 + qid), (running.dns_host, running.dns_port))
        full, slipped = split(receive_all(flood))
        other_full, other_slipped = split(receive_all(other))

        assert {m.id for m in other_full} == other_ids and not other_slipped
        assert all(m.answer for m in other_full)
        assert_limited(full, slipped)
        assert all(addresses(m) == WWW_ADDRESSES for m in full)
        for reply in slipped:  # TC=1, the question, nothing else
            assert reply.rcode() == dns.rcode.NOERROR
            assert str(reply.question[0].name) == NAME + "."
            assert not reply.answer and not reply.authority and not reply.additional
        assert len({m.id for m in full + slipped}) == len(full) + len(slipped)

        # The client told to retry over TCP gets its answer there: TCP is never limited.
        over_tcp = running.tcp(dns.message.make_query(NAME, "A"))
        assert addresses(over_tcp) == WWW_ADDRESSES

        dropped = FLOOD - len(full) - len(slipped)
        assert wait_for(lambda: metric(running, "fodns_dns_rrl_slipped_total") == len(slipped))
        assert wait_for(lambda: metric(running, "fodns_dns_rrl_dropped_total") == dropped)
        # One log line when the network starts being limited, not one per reply.
        assert wait_for(lambda: running.log_events("rrl_limiting_started"))
        (started,) = running.log_events("rrl_limiting_started")
        assert started["network"] == "127.0.5.0/24"
        assert started["response"] == "question" and started["name"] == NAME + "."
    finally:
        flood.close()
        other.close()


def test_addresses_in_one_network_share_its_limit(fodns_factory: StartFodns) -> None:
    """Four sources in one /24: counted together, they get what one source would."""
    running = fodns_factory(TOKEN, dns_extra=rrl_settings())
    sources = [source_socket(f"127.0.7.{host}") for host in (1, 2, 3, 4)]
    try:
        for qid in range(FLOOD):
            sources[qid % 4].sendto(query_wire(qid), (running.dns_host, running.dns_port))
        replies = [reply for sock in sources for reply in receive_all(sock)]
        full, slipped = split(replies)
        assert_limited(full, slipped)  # separately they would have had 4 x LIMIT
    finally:
        for sock in sources:
            sock.close()


def test_nxdomain_counts_per_zone_and_other_questions_keep_their_own_allowance(
    fodns_factory: StartFodns,
) -> None:
    """Random names under the zone (the pattern of a random-subdomain flood) count as
    one; the same network's ordinary question is counted apart and keeps answering."""
    running = fodns_factory(TOKEN, dns_extra=rrl_settings())
    sock = source_socket("127.0.8.1")
    rng = random.Random(20261122)
    try:
        www_ids = set()
        for qid in range(FLOOD):
            label = "".join(rng.choices(string.ascii_lowercase, k=12))
            sock.sendto(
                query_wire(qid, f"{label}.fo.example.net"), (running.dns_host, running.dns_port)
            )
            if qid % 20 == 0:
                www_ids.add(1000 + qid)
                sock.sendto(query_wire(1000 + qid), (running.dns_host, running.dns_port))
        full, slipped = split(receive_all(sock))
        www = [m for m in full if m.id in www_ids]
        nxdomain = [m for m in full if m.id not in www_ids]
        assert {m.id for m in www} == www_ids
        assert all(m.rcode() == dns.rcode.NXDOMAIN for m in nxdomain)
        assert_limited(nxdomain, slipped)
        assert wait_for(lambda: running.log_events("rrl_limiting_started"))
        (started,) = running.log_events("rrl_limiting_started")
        assert started["response"] == "nxdomain" and started["name"] == "fo.example.net."
    finally:
        sock.close()


def test_slip_1_truncates_every_limited_reply(fodns_factory: StartFodns) -> None:
    running = fodns_factory(TOKEN, dns_extra=rrl_settings(slip=1))
    sock = source_socket("127.0.9.1")
    try:
        for qid in range(FLOOD):
            sock.sendto(query_wire(qid), (running.dns_host, running.dns_port))
        full, slipped = split(receive_all(sock))
        assert LIMIT <= len(full) <= 2 * LIMIT
        assert len(full) + len(slipped) == FLOOD
    finally:
        sock.close()


def test_a_rate_of_0_turns_it_off(fodns_factory: StartFodns) -> None:
    running = fodns_factory(TOKEN, dns_extra=rrl_settings(rate=0))
    sock = source_socket("127.0.5.1")
    try:
        for qid in range(FLOOD):
            sock.sendto(query_wire(qid), (running.dns_host, running.dns_port))
        full, slipped = split(receive_all(sock))
        assert len(full) == FLOOD and not slipped
        assert running.log_events("rrl_disabled")
    finally:
        sock.close()


def test_on_by_default_with_loopback_exempt(fodns_factory: StartFodns) -> None:
    """The defaults: 200 a second per /24, slip 2, and 127.0.0.0/8 and ::1 exempt."""
    running = fodns_factory(TOKEN)
    exempt = source_socket("127.0.5.1")
    try:
        for qid in range(1000):
            exempt.sendto(query_wire(qid), (running.dns_host, running.dns_port))
        full, slipped = split(receive_all(exempt))
        assert len(full) == 1000 and not slipped
        assert wait_for(lambda: running.log_events("rrl_enabled"))
        (enabled,) = running.log_events("rrl_enabled")
        assert enabled["responses_per_second"] == 200 and enabled["slip"] == 2
        assert enabled["ipv4_prefix"] == 24 and enabled["ipv6_prefix"] == 56
        assert enabled["exempt"] == ["127.0.0.0/8", "::1/128"]
    finally:
        exempt.close()

    # The same defaults with nothing exempt: the 200 a second apply to loopback too.
    running = fodns_factory(TOKEN, dns_extra="rrl_exempt = []")
    sock = source_socket("127.0.5.1")
    try:
        for qid in range(1000):
            sock.sendto(query_wire(qid), (running.dns_host, running.dns_port))
        full, slipped = split(receive_all(sock))
        assert 200 <= len(full) <= 400
        assert (1000 - len(full)) // 2 - 1 <= len(slipped) <= (1000 - len(full)) // 2 + 1
    finally:
        sock.close()


def test_an_exempt_network_is_not_limited(fodns_factory: StartFodns) -> None:
    """Exempt networks may be narrower than the counted /24: its other hosts are limited."""
    running = fodns_factory(TOKEN, dns_extra=rrl_settings(exempt='["127.0.5.0/28"]'))
    exempt = source_socket("127.0.5.1")
    counted = source_socket("127.0.5.100")
    try:
        for qid in range(FLOOD):
            exempt.sendto(query_wire(qid), (running.dns_host, running.dns_port))
            counted.sendto(query_wire(qid), (running.dns_host, running.dns_port))
        full, slipped = split(receive_all(exempt))
        assert len(full) == FLOOD and not slipped
        assert_limited(*split(receive_all(counted)))
    finally:
        exempt.close()
        counted.close()


def test_ipv6_sources_are_limited_per_network(tmp_path: Path) -> None:
    if not loopback_v6_available():
        pytest.fail("IPv6 on loopback (::1) is missing on this host: the test must run with it")
    config = rrl_config(tmp_path)
    config.write_text(config.read_text().replace('"127.0.0.1:0"]', '"[::1]:0"]', 1))
    running = start_fodns("--config", str(config))
    sock = source_socket("::1", socket.AF_INET6)
    try:
        for qid in range(FLOOD):
            sock.sendto(query_wire(qid), ("::1", running.dns_port))
        full, slipped = split(receive_all(sock))
        assert_limited(full, slipped)
        assert wait_for(lambda: running.log_events("rrl_limiting_started"))
        assert running.log_events("rrl_limiting_started")[0]["network"] == "::/56"
    finally:
        sock.close()
        assert running.stop() == 0


def test_the_datagram_protocol_path_limits_too() -> None:
    """Where recvmmsg is missing, UdpProtocol answers: the same limits apply there."""
    handler = QueryHandler(AnswerTable([load_zone_file(EXAMPLE_ZONE, "fo.example.net")]))
    limits = RateLimitConfig(responses_per_second=LIMIT, slip=SLIP, exempt=[])

    async def flood() -> list[bytes]:
        limiter = ResponseRateLimiter(limits, handler.counters)
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(
            lambda: UdpProtocol(handler, limiter), local_addr=("127.0.0.1", 0)
        )
        address = transport.get_extra_info("sockname")
        sock = source_socket("127.0.10.1")
        try:
            for qid in range(FLOOD):
                sock.sendto(query_wire(qid), address)
            return await asyncio.to_thread(receive_all, sock)
        finally:
            sock.close()
            transport.close()

    full, slipped = split(asyncio.run(flood()))
    assert_limited(full, slipped)
    assert handler.counters[querystats.RRL_SLIPPED] == len(slipped)
    assert handler.counters[querystats.RRL_DROPPED] == FLOOD - len(full) - len(slipped)


@pytest.mark.parametrize(
    ("setting", "expected"),
    [
        ("rrl_responses_per_second = -1", "dns.rrl_responses_per_second: -1 is outside"),
        ('rrl_responses_per_second = "lots"', "dns.rrl_responses_per_second: must be int"),
        ("rrl_slip = 101", "dns.rrl_slip: 101 is outside 0-100"),
        ("rrl_ipv4_prefix = 33", "dns.rrl_ipv4_prefix: 33 is outside 0-32"),
        ("rrl_ipv6_prefix = 129", "dns.rrl_ipv6_prefix: 129 is outside 0-128"),
        ("rrl_table_size = 0", "dns.rrl_table_size: 0 is outside"),
        ('rrl_exempt = "127.0.0.1"', "dns.rrl_exempt: must be list"),
        ('rrl_exempt = ["::1", "10.0.0.0/33"]', "dns.rrl_exempt[1]: '10.0.0.0/33' is not an"),
        ("rrl_limit = 5", "dns.rrl_limit: unknown key"),
    ],
)
def test_a_bad_rrl_setting_stops_start_up_naming_the_key(
    tmp_path: Path, setting: str, expected: str
) -> None:
    config = write_config(tmp_path, [("fo.example.net", EXAMPLE_ZONE)], setting)
    result = subprocess.run(
        [sys.executable, "-m", "fodns", "serve", "--config", str(config)],
        cwd=REPOSITORY,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert f"fodns: error: {config}: {expected}" in result.stderr


def test_a_full_table_fails_open_until_the_next_second() -> None:
    """The counts are bounded: once the table holds `rrl_table_size` pairs, a new pair
    goes uncounted (never limited) for the rest of that second, then counts again."""
    counters = querystats.new_counters()
    limits = RateLimitConfig(responses_per_second=1, slip=0, table_size=100, exempt=[])
    limiter = ResponseRateLimiter(limits, counters)
    limiter.new_second(1)
    for network in range(100):
        assert limiter.judge(ipv4_source(bytes([10, network, 0, 1])), ERROR_KEY) == PASS
    late = ipv4_source(bytes([10, 200, 0, 1]))
    assert [limiter.judge(late, ERROR_KEY) for _ in range(5)] == [PASS] * 5
    assert limiter.judge(ipv4_source(bytes([10, 0, 0, 9])), ERROR_KEY) == DROP  # counted

    limiter.new_second(2)
    assert [limiter.judge(late, ERROR_KEY) for _ in range(3)] == [PASS, DROP, DROP]
    limiter.new_second(3)
    assert counters[querystats.RRL_LIMITED_PREFIXES] == 1  # 10.200.0.0/24, in second 2
    assert counters[querystats.RRL_DROPPED] == 3
