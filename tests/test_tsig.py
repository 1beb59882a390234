"""TSIG (RFC 8945) as a secondary meets it: key names compared as the domain names they
are, a clock out of step told apart from a bad signature (BADTIME, signed, with the
server's time), and a server-side bound on the fudge a client may claim. Each rule is
checked on a signed query (UDP and TCP) and on a zone transfer, with one DNS worker
and with two."""

from __future__ import annotations

import hashlib
import hmac
import socket
import struct
import time
from collections.abc import Callable, Iterator

import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.TSIG
import dns.tsig
import dns.tsigkeyring
import dns.zone
import pytest

from tests.support import (
    KEYRING,
    SECRET,
    FodnsProcess,
    keyring_for,
    start_with_config,
    tcp_exchange,
    tsig_table,
)
from tests.support.transfer import TOKEN, pull, transfer_options

BADTIME = 18
NOTAUTH = 9
# RFC 8945 §10: "The RECOMMENDED value in most situations is 300 seconds."
SERVER_MAX_FUDGE = 300
# Every algorithm fodns accepts (fodns/config.py TSIG_ALGORITHMS), each with a key of
# its own besides xfr (hmac-sha256), all allowed to transfer.
OTHER_ALGORITHMS = ["hmac-sha512", "hmac-sha384", "hmac-sha224", "hmac-sha1"]
ALGORITHM_KEYS = {algorithm: f"xfr-{algorithm}" for algorithm in OTHER_ALGORITHMS}
StartFodns = Callable[..., FodnsProcess]


def allow(*keys: str) -> str:
    return ", ".join(f'{{ address = "127.0.0.1/32", key = "{key}" }}' for key in keys)


@pytest.fixture(scope="module", params=[1, 2], ids=["workers1", "workers2"])
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[FodnsProcess]:
    options = transfer_options(allow("xfr", *ALGORITHM_KEYS.values()))
    options["extra"] += "".join(
        tsig_table(algorithm, name=name) for algorithm, name in ALGORITHM_KEYS.items()
    )
    running = start_with_config(
        tmp_path_factory.mktemp("tsig"), TOKEN, workers=request.param, **options
    )
    try:
        yield running
    finally:
        assert running.stop() == 0, "fodns did not shut down cleanly on SIGTERM"


# ---- key names --------------------------------------------------------------------


@pytest.mark.parametrize("keyname", ["xfr.", "XFR.", "Xfr"])
def test_a_key_name_matches_in_any_letter_case(server: FodnsProcess, keyname: str) -> None:
    """RFC 8945 §4.2: a key name is a domain name, so `XFR.` is the key [tsig.xfr]."""
    keyring = dns.tsigkeyring.from_text({keyname: ("hmac-sha256", SECRET)})
    zone = pull(server, keyring, keyname)
    assert zone.find_rdataset("www", "A")


@pytest.mark.parametrize(
    ("key_table", "allow_key"),
    [
        ('[tsig."XFR."]', "xfr"),
        ("[tsig.xfr]", "Xfr."),
        ('[tsig."xfr."]', "xfr."),
    ],
)
def test_configured_key_names_ignore_case_and_the_final_dot(
    fodns_factory: StartFodns, key_table: str, allow_key: str
) -> None:
    running = fodns_factory(
        TOKEN,
        zone_extra=f"allow_transfer = [{allow(allow_key)}]\n",
        extra=f'{key_table}\nalgorithm = "hmac-sha256"\nsecret = "{SECRET}"\n',
    )
    assert pull(running).find_rdataset("www", "A")


# ---- time: BADTIME and the server's bound on the fudge ----------------------------


def signed_at(query: dns.message.Message, when: int, fudge: int) -> tuple[bytes, bytes]:
    """`query` signed with the xfr key as a client whose clock reads `when` would sign
    it, claiming `fudge` seconds of tolerance: (wire, the request's MAC)."""
    key = dns.tsig.Key("xfr.", SECRET, dns.tsig.HMAC_SHA256)
    unsigned = query.to_wire()
    template = dns.rdtypes.ANY.TSIG.TSIG(
        dns.rdataclass.ANY,
        dns.rdatatype.TSIG,
        key.algorithm,
        0,
        fudge,
        b"",
        query.id,
        0,
        b"",
    )
    rdata, _ = dns.tsig.sign(unsigned, key, template, when, b"")
    rdata_wire = rdata.to_wire()
    record = (
        key.name.to_wire()
        + struct.pack("!HHIH", dns.rdatatype.TSIG, dns.rdataclass.ANY, 0, len(rdata_wire))
        + rdata_wire
    )
    additional = int.from_bytes(unsigned[10:12], "big") + 1
    return unsigned[:10] + additional.to_bytes(2, "big") + unsigned[12:] + record, rdata.mac


def exchange(server: FodnsProcess, wire: bytes, transport: str) -> bytes:
    """One request, the first reply message's bytes (over TCP: the first of a stream)."""
    if transport == "udp":
        reply = server.raw_udp(wire, timeout=5.0)
        assert reply is not None, "no reply"
        return reply
    with socket.create_connection((server.dns_host, server.dns_port), timeout=10) as sock:
        first = tcp_exchange(sock, wire)
    assert first is not None, "connection closed without a reply"
    return first


def expected_mac(reply: bytes, request_mac: bytes) -> bytes:
    """The MAC a reply's TSIG must carry (RFC 8945 §4.3), computed here from the bytes
    alone: the request's MAC, the reply without its TSIG (ARCOUNT one less, the
    original ID), and the TSIG variables in canonical form."""
    message = dns.message.from_wire(reply, keyring=False)
    tsig = message.tsig[0]
    tsig_start = len(reply) - len(
        message.keyname.to_wire()
        + struct.pack("!HHIH", 0, 0, 0, 0)
        + tsig.to_wire()  # the owner is written uncompressed by fodns
    )
    additional = int.from_bytes(reply[10:12], "big") - 1
    body = (
        struct.pack("!H", tsig.original_id)
        + reply[2:10]
        + additional.to_bytes(2, "big")
        + reply[12:tsig_start]
    )
    variables = (
        message.keyname.to_digestable()
        + struct.pack("!HI", dns.rdataclass.ANY, 0)
        + tsig.algorithm.to_digestable()
        + struct.pack("!HIH", tsig.time_signed >> 32, tsig.time_signed & 0xFFFFFFFF, tsig.fudge)
        + struct.pack("!HH", tsig.error, len(tsig.other))
        + tsig.other
    )
    data = struct.pack("!H", len(request_mac)) + request_mac + body + variables
    return hmac.new(dns.tsig.Key("x.", SECRET).secret, data, hashlib.sha256).digest()


def assert_badtime(reply: bytes, when: int, fudge: int, request_mac: bytes) -> None:
    """NOTAUTH with a TSIG saying BADTIME (RFC 8945 §5.2.3): signed with the request's
    key, the client's time and fudge, and the server's time in Other Data."""
    message = dns.message.from_wire(reply, keyring=False)
    assert message.rcode() == NOTAUTH
    assert not message.answer
    tsig = message.tsig[0]
    assert tsig.error == BADTIME, f"TSIG error {tsig.error}, not BADTIME"
    assert (tsig.time_signed, tsig.fudge) == (when, fudge)
    assert len(tsig.other) == 6, "Other Data must hold the server's 48-bit time"
    server_time = int.from_bytes(tsig.other, "big")
    assert abs(server_time - time.time()) < 30
    assert tsig.mac, "a BADTIME reply must be signed"
    assert hmac.compare_digest(tsig.mac, expected_mac(reply, request_mac))


def soa_query() -> dns.message.Message:
    return dns.message.make_query("fo.example.net", "SOA")


def axfr_query() -> dns.message.Message:
    return dns.message.make_query("fo.example.net", "AXFR")


REQUESTS = {
    "query over UDP": (soa_query, "udp"),
    "query over TCP": (soa_query, "tcp"),
    "AXFR": (axfr_query, "tcp"),
}


@pytest.mark.parametrize("kind", sorted(REQUESTS))
def test_a_clock_an_hour_behind_gets_a_signed_badtime(server: FodnsProcess, kind: str) -> None:
    make, transport = REQUESTS[kind]
    when = int(time.time()) - 3600
    wire, mac = signed_at(make(), when, fudge=300)
    assert_badtime(exchange(server, wire, transport), when, 300, mac)


@pytest.mark.parametrize("kind", sorted(REQUESTS))
def test_a_client_cannot_widen_the_window_with_its_own_fudge(
    server: FodnsProcess, kind: str
) -> None:
    """A fudge of 65535 s would let a captured request be replayed for 18 hours: the
    time is checked against at most 300 s (RFC 8945 §10), whatever the client claims."""
    make, transport = REQUESTS[kind]
    when = int(time.time()) - 3600
    wire, mac = signed_at(make(), when, fudge=65535)
    assert_badtime(exchange(server, wire, transport), when, 65535, mac)


@pytest.mark.parametrize("kind", sorted(REQUESTS))
def test_a_clock_within_the_window_is_answered(server: FodnsProcess, kind: str) -> None:
    make, transport = REQUESTS[kind]
    wire, mac = signed_at(make(), int(time.time()) - SERVER_MAX_FUDGE // 2, fudge=65535)
    reply = exchange(server, wire, transport)
    keyring = KEYRING
    # dnspython checks the reply's MAC against the request's (a transfer's first message
    # is signed the same way, RFC 8945 §5.3.1).
    message = dns.message.from_wire(reply, keyring=keyring, request_mac=mac, multi=True)
    assert message.rcode() == dns.rcode.NOERROR
    assert message.answer[0].rdtype == dns.rdatatype.SOA


def test_a_smaller_client_fudge_is_honoured(server: FodnsProcess) -> None:
    when = int(time.time()) - 60
    wire, mac = signed_at(soa_query(), when, fudge=10)
    assert_badtime(exchange(server, wire, "udp"), when, 10, mac)


@pytest.mark.parametrize("kind", sorted(REQUESTS))
def test_the_right_key_with_another_algorithm_is_badkey(server: FodnsProcess, kind: str) -> None:
    """RFC 8945 §5.2.1: a key the server has, but not with that algorithm, is a key it
    does not know: BADKEY, unsigned."""
    make, transport = REQUESTS[kind]
    request = make()
    request.use_tsig(
        keyring_for("hmac-sha512"),
        keyname="xfr.",
        algorithm=dns.tsig.HMAC_SHA512,
    )
    message = dns.message.from_wire(exchange(server, request.to_wire(), transport), keyring=False)
    assert message.rcode() == NOTAUTH
    assert (message.tsig[0].error, message.tsig[0].mac) == (dns.rcode.BADKEY, b"")


# ---- algorithms ---------------------------------------------------------------------


@pytest.mark.parametrize("algorithm", OTHER_ALGORITHMS)
def test_every_accepted_algorithm_signs_transfers_and_answers(
    server: FodnsProcess, algorithm: str
) -> None:
    """A key of each algorithm fodns accepts (RFC 8945 §6) signs a transfer, whose every
    message dnspython verifies, and signed queries over UDP and TCP."""
    name = ALGORITHM_KEYS[algorithm]
    keyring = keyring_for(algorithm, name=name)
    zone = pull(server, keyring, f"{name}.")
    assert zone.find_rdataset("www", "A")
    for transport in ("udp", "tcp"):
        query = soa_query()
        query.use_tsig(keyring, keyname=f"{name}.", algorithm=f"{algorithm}.")
        reply = getattr(server, transport)(query)  # raises unless signed with that key
        assert reply.had_tsig and reply.rcode() == dns.rcode.NOERROR
        assert reply.tsig[0].algorithm == dns.name.from_text(algorithm)
        assert reply.answer[0].rdtype == dns.rdatatype.SOA
