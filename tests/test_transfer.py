"""Zone transfers out of fodns (AXFR over TCP, RFC 5936) with TSIG (RFC 8945), and the
allow_transfer list: dnspython's transfer client plays the secondary."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.tsigkeyring
import dns.xfr
import dns.zone
import pytest

from tests.conftest import EXAMPLE_ZONE, FodnsProcess, api_request, start_fodns, write_config

SECRET = "c2VjcmV0LXNoYXJlZC13aXRoLXRoZS1zZWNvbmRhcnk="
KEYRING = dns.tsigkeyring.from_text({"xfr.": ("hmac-sha256", SECRET)})
WRONG = dns.tsigkeyring.from_text({"xfr.": ("hmac-sha256", "d3Jvbmctc2VjcmV0LXdyb25nLXNlY3JldA==")})
TOKEN = "xfr-test-token"


def start(tmp_path: Path, allow: str) -> FodnsProcess:
    config = write_config(
        tmp_path,
        [("fo.example.net", EXAMPLE_ZONE)],
        zone_extra=f"allow_transfer = [{allow}]\n",
        extra=f'[tsig.xfr]\nalgorithm = "hmac-sha256"\nsecret = "{SECRET}"\n',
    )
    return start_fodns("--config", str(config), env={"FODNS_ADMIN_TOKEN": TOKEN})


def api(server: FodnsProcess, path: str, body: object) -> object:
    status, payload = api_request(server, "POST", path, body, TOKEN)
    assert status in (200, 201), (path, status, payload)
    return payload


@pytest.fixture
def server(tmp_path: Path) -> Iterator[FodnsProcess]:
    running = start(tmp_path, '{ address = "127.0.0.1/32", key = "xfr" }')
    api(running, "/v1/apps", {"name": "eu", "web_servers": ["192.0.2.10"]})
    api(running, "/v1/apps", {"name": "us", "load_balancer": ["lb.us.example.com"]})
    api(running, "/v1/groups", {"label": "shop", "primary": "eu", "backup": "us"})
    yield running
    assert running.stop() == 0


def pull(server: FodnsProcess, keyring: object = KEYRING, **kwargs: object) -> dns.zone.Zone:
    return dns.zone.from_xfr(
        dns.query.xfr(
            "127.0.0.1",
            "fo.example.net",
            port=server.dns_port,
            keyring=keyring,
            keyname="xfr." if keyring else None,
            timeout=5,
            **kwargs,
        )
    )


def test_a_signed_axfr_carries_the_zone_file_and_the_groups(server: FodnsProcess) -> None:
    zone = pull(server)
    served = server.tcp(dns.message.make_query("fo.example.net", "SOA"))
    assert zone.get_soa().serial == served.answer[0][0].serial
    assert {r.to_text() for r in zone.find_rdataset("www", "A")} == {"192.0.2.10", "192.0.2.11"}
    assert {r.to_text() for r in zone.find_rdataset("shop", "A")} == {"192.0.2.10"}
    assert zone.find_rdataset("shop", "A").ttl == 30
    assert zone.find_rdataset("*.preview", "TXT")
    # Everything the zone file holds came across.
    original = dns.zone.from_file(str(EXAMPLE_ZONE), origin="fo.example.net.", relativize=True)
    for name, node in original.nodes.items():
        for rdataset in node.rdatasets:
            if rdataset.rdtype != dns.rdatatype.SOA:
                assert zone.find_rdataset(name, rdataset.rdtype) == rdataset, (name, rdataset)


def test_a_switch_is_in_the_next_transfer(server: FodnsProcess) -> None:
    before = pull(server).get_soa().serial
    api(server, "/v1/groups/shop/switch", {"to": "backup"})
    zone = pull(server)
    assert zone.get_soa().serial > before
    assert zone.find_rdataset("shop", "CNAME")[0].target.to_text() == "lb.us.example.com."


def test_ixfr_is_answered_with_the_whole_zone(server: FodnsProcess) -> None:
    """RFC 1995 §4: without history to send, a full zone in AXFR form answers an IXFR."""
    query, _ = dns.xfr.make_query(
        dns.zone.Zone("fo.example.net."), serial=1, keyring=KEYRING, keyname="xfr."
    )
    zone = dns.zone.Zone("fo.example.net.")
    dns.query.inbound_xfr("127.0.0.1", zone, query, port=server.dns_port, timeout=5)
    assert {r.to_text() for r in zone.find_rdataset("shop", "A")} == {"192.0.2.10"}


def test_a_wrong_key_is_refused_with_badsig(server: FodnsProcess) -> None:
    with pytest.raises(
        (dns.tsig.PeerBadSignature, dns.query.TransferError, dns.exception.DNSException)
    ):
        pull(server, keyring=WRONG)


def test_an_unsigned_request_is_refused_where_a_key_is_required(server: FodnsProcess) -> None:
    with pytest.raises(dns.query.TransferError) as refused:
        pull(server, keyring=None)
    assert refused.value.rcode == dns.rcode.REFUSED
    assert server.log_events("transfer_refused")


def test_an_address_not_listed_is_refused(tmp_path: Path) -> None:
    running = start(tmp_path, '{ address = "127.0.0.2/32", key = "xfr" }')
    try:
        with pytest.raises(dns.query.TransferError) as refused:
            pull(running)
        assert refused.value.rcode == dns.rcode.REFUSED
    finally:
        assert running.stop() == 0


def test_axfr_over_udp_is_refused(server: FodnsProcess) -> None:
    reply = server.udp(dns.message.make_query("fo.example.net", "AXFR"))
    assert reply.rcode() == dns.rcode.REFUSED


def test_a_large_zone_streams_in_many_signed_messages(tmp_path: Path) -> None:
    running = start(tmp_path, '{ address = "127.0.0.1/32", key = "xfr" }')
    try:
        api(running, "/v1/apps", {"name": "eu", "web_servers": ["192.0.2.10", "192.0.2.11"]})
        for index in range(600):
            api(running, "/v1/groups", {"label": f"g{index}", "primary": "eu"})
        messages = list(
            dns.query.xfr(
                "127.0.0.1",
                "fo.example.net",
                port=running.dns_port,
                keyring=KEYRING,
                keyname="xfr.",
                timeout=10,
            )
        )
        assert len(messages) > 1, "the zone should need several messages"
        zone = dns.zone.from_xfr(iter(messages))
        assert all(zone.find_rdataset(f"g{index}", "A") for index in range(600))
    finally:
        assert running.stop() == 0
