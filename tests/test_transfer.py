"""Zone transfers out of fodns (AXFR over TCP, RFC 5936) with TSIG (RFC 8945), and the
allow_transfer list: dnspython's transfer client plays the secondary."""

from __future__ import annotations

import ipaddress
import json
import signal
import socket
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.tsigkeyring
import dns.xfr
import dns.zone
import pytest

from fodns.store import Store, ZoneDefaults
from tests.support import (
    EXAMPLE_ZONE,
    FodnsProcess,
    api_request,
    recv_exactly,
    start_fodns,
    wait_for,
    write_config,
)

SECRET = "c2VjcmV0LXNoYXJlZC13aXRoLXRoZS1zZWNvbmRhcnk="
KEYRING = dns.tsigkeyring.from_text({"xfr.": ("hmac-sha256", SECRET)})
WRONG = dns.tsigkeyring.from_text({"xfr.": ("hmac-sha256", "d3Jvbmctc2VjcmV0LXdyb25nLXNlY3JldA==")})
TOKEN = "xfr-test-token-91c2"


ALLOW_KEY = '{ address = "127.0.0.1/32", key = "xfr" }'


def start(
    tmp_path: Path, allow: str = ALLOW_KEY, workers: int = 1, zone_file: Path = EXAMPLE_ZONE
) -> FodnsProcess:
    config = write_config(
        tmp_path,
        [("fo.example.net", zone_file)],
        dns_extra=f"workers = {workers}\n",
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
    running = start(tmp_path)
    add_shop(running, backup_head={"load_balancer": ["lb.us.example.com"]})
    yield running
    assert running.stop() == 0


def add_shop(server: FodnsProcess, backup_head: dict[str, list[str]] | None = None) -> None:
    """Apps eu (192.0.2.10) and us (192.0.2.20, or `backup_head`), group shop on eu."""
    api(server, "/v1/apps", {"name": "eu", "web_servers": ["192.0.2.10"]})
    api(server, "/v1/apps", {"name": "us", **(backup_head or {"web_servers": ["192.0.2.20"]})})
    api(server, "/v1/groups", {"label": "shop", "primary": "eu", "backup": "us"})


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


def ixfr(server: FodnsProcess, zone: dns.zone.Zone, serial: int | None = 0) -> None:
    """Bring `zone` up to date by IXFR from its serial (0) or `serial` (None: AXFR),
    as a secondary does."""
    query, _ = dns.xfr.make_query(zone, serial=serial, keyring=KEYRING, keyname="xfr.")
    dns.query.inbound_xfr("127.0.0.1", zone, query, port=server.dns_port, timeout=10)


def last_transfer(server: FodnsProcess) -> dict[str, object]:
    """The log event of the IXFR just made. The log is read by a thread, so the AXFR
    made before it may still be the newest event read: wait for the IXFR's own."""

    def newest() -> dict[str, object] | None:
        events = server.log_events("zone_transferred")
        return events[-1] if events and events[-1]["type"] == "IXFR" else None

    assert wait_for(newest)
    event = newest()
    assert event is not None
    return event


def same_records(left: dns.zone.Zone, right: dns.zone.Zone) -> bool:
    def records(zone: dns.zone.Zone) -> set[str]:
        return {
            f"{name} {rdataset.ttl} {rdataset.rdtype} {rdata}"
            for name, rdataset in zone.iterate_rdatasets()
            for rdata in rdataset
        }

    return records(left) == records(right)


def test_ixfr_sends_only_the_changes_since_the_secondary_serial(server: FodnsProcess) -> None:
    secondary = dns.zone.Zone("fo.example.net.")
    ixfr(server, secondary, serial=None)  # the first copy is an AXFR
    first = secondary.get_soa().serial
    api(server, "/v1/groups/shop/switch", {"to": "backup"})
    api(server, "/v1/apps", {"name": "ap", "web_servers": ["2001:db8::7"]})
    api(server, "/v1/groups", {"label": "new", "primary": "ap"})
    api(server, "/v1/groups/shop/switch", {"to": "primary"})
    ixfr(server, secondary)
    sent = last_transfer(server)
    assert (sent["type"], sent["style"], sent["client_serial"]) == ("IXFR", "incremental", first)
    assert secondary.get_soa().serial == first + 3
    assert same_records(secondary, pull(server))
    assert {r.to_text() for r in secondary.find_rdataset("new", "AAAA")} == {"2001:db8::7"}
    assert {r.to_text() for r in secondary.find_rdataset("shop", "A")} == {"192.0.2.10"}
    assert secondary.get_rdataset("shop", "CNAME") is None


def test_ixfr_difference_sequences_are_the_journal(server: FodnsProcess) -> None:
    """RFC 1995 §4: SOA new, then per change SOA old, deletions, SOA next, additions."""
    serial = pull(server).get_soa().serial
    api(server, "/v1/groups/shop/switch", {"to": "backup"})
    query, _ = dns.xfr.make_query(
        dns.zone.Zone("fo.example.net."), serial=serial, keyring=KEYRING, keyname="xfr."
    )
    reply = dns.query.tcp(query, "127.0.0.1", port=server.dns_port, one_rr_per_rrset=True)
    shape = [(rrset.name.to_text(), dns.rdatatype.to_text(rrset.rdtype)) for rrset in reply.answer]
    serials = [rrset[0].serial for rrset in reply.answer if rrset.rdtype == dns.rdatatype.SOA]
    assert shape == [
        ("fo.example.net.", "SOA"),
        ("fo.example.net.", "SOA"),
        ("shop.fo.example.net.", "A"),
        ("fo.example.net.", "SOA"),
        ("shop.fo.example.net.", "CNAME"),
        ("fo.example.net.", "SOA"),
    ]
    assert serials == [serial + 1, serial, serial + 1, serial + 1]
    assert reply.had_tsig


def test_ixfr_falls_back_to_the_whole_zone_when_history_is_gone(server: FodnsProcess) -> None:
    """RFC 1995 §4: a serial the journal does not reach back to gets the zone in AXFR form."""
    secondary = dns.zone.Zone("fo.example.net.")
    ixfr(server, secondary, serial=1)
    assert last_transfer(server)["style"] == "full"
    assert same_records(secondary, pull(server))


def test_ixfr_from_the_current_serial_is_the_soa_alone(server: FodnsProcess) -> None:
    """RFC 1995 §2: a secondary as new as the primary gets just the SOA."""
    serial = pull(server).get_soa().serial
    query, _ = dns.xfr.make_query(
        dns.zone.Zone("fo.example.net."), serial=serial, keyring=KEYRING, keyname="xfr."
    )
    reply = server.tcp(query)
    assert [rrset.rdtype for rrset in reply.answer] == [dns.rdatatype.SOA]
    assert reply.answer[0][0].serial == serial
    assert last_transfer(server)["style"] == "up-to-date"


def test_ixfr_without_the_secondary_soa_is_formerr(server: FodnsProcess) -> None:
    query = dns.message.make_query("fo.example.net.", "IXFR")
    query.use_tsig(KEYRING, keyname="xfr.")
    assert server.tcp(query).rcode() == dns.rcode.FORMERR


def test_the_history_survives_a_restart(tmp_path: Path) -> None:
    running = start(tmp_path)
    try:
        add_shop(running)
        secondary = pull(running)
        api(running, "/v1/groups/shop/switch", {"to": "backup"})
    finally:
        assert running.stop() == 0
    running = start(tmp_path)
    try:
        ixfr(running, secondary)
        assert last_transfer(running)["style"] == "incremental"
        assert {r.to_text() for r in secondary.find_rdataset("shop", "A")} == {"192.0.2.20"}
    finally:
        assert running.stop() == 0


def test_every_worker_answers_ixfr_from_the_journal(tmp_path: Path) -> None:
    running = start(tmp_path, workers=2)
    try:
        add_shop(running)
        base = pull(running)
        api(running, "/v1/groups/shop/switch", {"to": "backup"})
        for _ in range(8):  # new connections, spread over both workers by SO_REUSEPORT
            secondary = dns.zone.Zone("fo.example.net.")
            secondary.replace_rdataset("@", base.get_rdataset("@", "SOA"))
            for name, rdataset in base.iterate_rdatasets():
                secondary.replace_rdataset(name, rdataset)
            ixfr(running, secondary)
            assert {r.to_text() for r in secondary.find_rdataset("shop", "A")} == {"192.0.2.20"}
        # Each worker logs its transfer on its own stderr: wait for all nine lines.
        assert wait_for(lambda: len(running.log_events("zone_transferred")) == 9)
        transfers = running.log_events("zone_transferred")[1:]
        assert [t["style"] for t in transfers] == ["incremental"] * 8
    finally:
        assert running.stop() == 0


def test_an_edited_zone_file_moves_the_serial_and_ends_the_history(tmp_path: Path) -> None:
    """The journal holds no zone-file edits: after one, older serials get the whole zone,
    even when the operator did not raise the file's serial."""
    zone_file = tmp_path / "fo.example.net.zone"
    zone_file.write_text(EXAMPLE_ZONE.read_text())
    running = start(tmp_path, zone_file=zone_file)
    try:
        secondary = pull(running)
        before = secondary.get_soa().serial
        zone_file.write_text(zone_file.read_text() + 'added 300 IN TXT "edited"\n')
        running.process.send_signal(signal.SIGHUP)
        assert wait_for(lambda: running.log_events("zones_reloaded"))
        assert pull(running).get_soa().serial == before + 1
        ixfr(running, secondary)
        assert last_transfer(running)["style"] == "full"
        assert secondary.get_rdataset("added", "TXT") is not None
        # Reloading the same file again changes nothing.
        running.process.send_signal(signal.SIGHUP)
        assert wait_for(lambda: len(running.log_events("zones_reloaded")) == 2)
        assert pull(running).get_soa().serial == before + 1
    finally:
        assert running.stop() == 0


def test_a_wrong_key_is_refused_with_badsig(server: FodnsProcess) -> None:
    with pytest.raises(
        (dns.tsig.PeerBadSignature, dns.query.TransferError, dns.exception.DNSException)
    ):
        pull(server, keyring=WRONG)
    assert wait_for(lambda: server.log_events("transfer_refused"))
    refused = server.log_events("transfer_refused")[-1]
    assert (refused["key"], refused["reason"]) == ("xfr.", "bad TSIG signature")


def test_an_unsigned_request_is_refused_where_a_key_is_required(server: FodnsProcess) -> None:
    with pytest.raises(dns.query.TransferError) as refused:
        pull(server, keyring=None)
    assert refused.value.rcode == dns.rcode.REFUSED
    assert wait_for(lambda: server.log_events("transfer_refused"))


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


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_a_signed_query_with_a_configured_key_gets_a_signed_answer(
    server: FodnsProcess, transport: str
) -> None:
    """Secondaries sign their SOA checks (Knot before each IXFR): RFC 8945 §5.3."""
    query = dns.message.make_query("fo.example.net", "SOA")
    query.use_tsig(KEYRING, keyname="xfr.")
    # dnspython verifies the reply's TSIG against the query's MAC, and raises if the
    # reply is unsigned or the MAC is wrong.
    reply = getattr(server, transport)(query)
    assert reply.rcode() == dns.rcode.NOERROR
    assert reply.had_tsig
    assert reply.answer[0].rdtype == dns.rdatatype.SOA
    shop = dns.message.make_query("shop.fo.example.net", "A")
    shop.use_tsig(KEYRING, keyname="xfr.")
    assert {r.to_text() for r in getattr(server, transport)(shop).answer[0]} == {"192.0.2.10"}


def test_a_query_signed_with_a_wrong_secret_is_notauth_badsig(server: FodnsProcess) -> None:
    query = dns.message.make_query("fo.example.net", "SOA")
    query.use_tsig(WRONG, keyname="xfr.")
    wire = server.raw_udp(query.to_wire(), timeout=2.0)
    assert wire is not None
    reply = dns.message.from_wire(wire, keyring=False)
    assert reply.rcode() == dns.rcode.NOTAUTH
    assert reply.tsig is not None and reply.tsig[0].error == dns.rcode.BADSIG
    assert not reply.answer


# ---- record sets of any size ------------------------------------------------------
# A TCP message holds at most 65,535 octets (RFC 1035 §4.2.2). RFC 5936 §2.2 leaves
# the grouping of records into messages to the server ("clients MUST accept any
# ordering and grouping of the non-SOA RRs"), so no set, however large, may stop a
# transfer.

NOW = "2026-11-22T00:00:00.000Z"


def addresses(version: int, count: int) -> list[str]:
    base = ipaddress.ip_address("10.0.0.0" if version == 4 else "2001:db8::")
    return [str(base + 1 + index) for index in range(count)]


def fill_store(path: Path, apps: dict[str, list[str]], groups: dict[str, str]) -> None:
    """Apps with web heads of any size, and groups on them, written straight into the
    database of a server not yet started: the admin API caps a web head's size, the
    store and the transfer must not depend on that."""
    Store(path, {"fo.example.net": ZoneDefaults(serial=1)}).close()
    ids = {name: index + 1 for index, name in enumerate(apps)}
    with sqlite3.connect(path) as db:
        db.executemany(
            "INSERT INTO apps (id, name, web_servers, created_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?)",
            [(ids[name], name, json.dumps(head), NOW, NOW) for name, head in apps.items()],
        )
        db.executemany(
            "INSERT INTO labels VALUES ('fo.example.net', ?, ?)", [(g, NOW) for g in groups]
        )
        db.executemany(
            "INSERT INTO groups (zone, label, primary_app_id, active, ttl, created_at,"
            " updated_at) VALUES ('fo.example.net', ?, ?, 'primary', 30, ?, ?)",
            [(label, ids[app], NOW, NOW) for label, app in groups.items()],
        )


def transfer_messages(server: FodnsProcess) -> list[dns.message.Message]:
    """Every message of a signed AXFR; dnspython checks each one's TSIG (RFC 8945
    §5.3.1) and that the stream ends with the SOA."""
    return list(
        dns.query.xfr(
            "127.0.0.1",
            "fo.example.net",
            port=server.dns_port,
            keyring=KEYRING,
            keyname="xfr.",
            timeout=20,
        )
    )


def served(zone: dns.zone.Zone, name: str, rdtype: str) -> set[str]:
    rdataset = zone.get_rdataset(name, rdtype)
    return {r.to_text() for r in rdataset} if rdataset else set()


@pytest.mark.parametrize("workers", [1, 2])
def test_groups_on_an_app_with_thousands_of_addresses_transfer_whole(
    tmp_path: Path, workers: int
) -> None:
    """An app with 1,000 IPv4 and 1,000 IPv6 addresses: each group on it is 68 KB of
    records, more than one message holds, so its A and AAAA sets go in separate
    messages; one with 3,000 IPv6 addresses is a set of 120 KB, larger than any
    message, so its records are spread over several."""
    wide = addresses(4, 1000) + addresses(6, 1000)
    huge = addresses(6, 3000)
    fill_store(
        tmp_path / "fodns.db",
        {"wide": wide, "huge": huge, "eu": ["192.0.2.10"]},
        {"wide-1": "wide", "shop": "eu", "wide-2": "wide", "huge": "huge", "after": "eu"},
    )
    running = start(tmp_path, workers=workers)
    try:
        messages = transfer_messages(running)
        zone = dns.zone.from_xfr(iter(messages))
        for label in ("wide-1", "wide-2"):
            assert served(zone, label, "A") == set(addresses(4, 1000)), label
            assert served(zone, label, "AAAA") == set(addresses(6, 1000)), label
        assert served(zone, "huge", "AAAA") == set(huge)
        assert served(zone, "shop", "A") == served(zone, "after", "A") == {"192.0.2.10"}
        assert served(zone, "www", "A") == {"192.0.2.10", "192.0.2.11"}
        assert not running.log_events("transfer_failed")
    finally:
        assert running.stop() == 0


def test_ixfr_of_a_switch_to_a_huge_web_head_arrives_whole(tmp_path: Path) -> None:
    """The same splitting for IXFR's difference sequences (RFC 1995 §4)."""
    huge = addresses(6, 3000)
    # Enough groups that 3,001 changed records do not outweigh the zone (RFC 1995 §4).
    small = {f"g{index}": "eu" for index in range(3100)}
    fill_store(
        tmp_path / "fodns.db",
        {"eu": ["192.0.2.10"], "huge": huge},
        {"shop": "eu", **small},
    )
    running = start(tmp_path)
    try:
        secondary = pull(running)
        status, payload = api_request(
            running, "PATCH", "/v1/groups/shop", {"backup": "huge"}, TOKEN
        )
        assert status == 200, payload
        api(running, "/v1/groups/shop/switch", {"to": "backup"})
        ixfr(running, secondary)
        assert last_transfer(running)["style"] == "incremental"
        assert served(secondary, "shop", "AAAA") == set(huge)
        assert served(secondary, "shop", "A") == set()
        assert same_records(secondary, pull(running))
    finally:
        assert running.stop() == 0


def metric(server: FodnsProcess, name: str) -> float:
    status, text = server.http_get("/metrics")
    assert status == 200
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not in /metrics")


@pytest.mark.parametrize("workers", [1, 2])
def test_a_record_too_big_for_any_message_is_left_out_and_reported(
    tmp_path: Path, workers: int
) -> None:
    """A TXT record of 65,530 octets of data fits in no message with a header and the
    question: the transfer goes on without it, and says so once, with a counter."""
    strings = " ".join(['"' + "x" * 255 + '"'] * 255 + ['"' + "y" * 249 + '"'])
    zone_file = tmp_path / "fo.example.net.zone"
    zone_file.write_text(EXAMPLE_ZONE.read_text() + f"huge 300 IN TXT {strings}\n")
    running = start(tmp_path, workers=workers, zone_file=zone_file)
    try:
        add_shop(running)
        zone = dns.zone.from_xfr(iter(transfer_messages(running)))
        assert zone.get_rdataset("huge", "TXT") is None
        assert served(zone, "shop", "A") == {"192.0.2.10"}
        original = dns.zone.from_file(str(EXAMPLE_ZONE), origin="fo.example.net.")
        for name, node in original.nodes.items():
            for rdataset in node.rdatasets:
                if rdataset.rdtype != dns.rdatatype.SOA:
                    assert zone.find_rdataset(name, rdataset.rdtype) == rdataset, name
        assert wait_for(lambda: running.log_events("transfer_records_left_out"))
        [event] = running.log_events("transfer_records_left_out")
        assert (event["zone"], event["owner"], event["type"], event["records"]) == (
            "fo.example.net.",
            "huge.fo.example.net.",
            "TXT",
            1,
        )
        assert wait_for(lambda: metric(running, "fodns_transfer_records_left_out_total") == 1)
        assert not running.log_events("transfer_failed")
    finally:
        assert running.stop() == 0


def tcp_exchange(sock: socket.socket, wire: bytes) -> bytes | None:
    """One framed message out, one framed reply back; None when the server closed."""
    sock.sendall(len(wire).to_bytes(2, "big") + wire)
    prefix = recv_exactly(sock, 2)
    return None if prefix is None else recv_exactly(sock, int.from_bytes(prefix, "big"))


def signed_axfr(keyring: object, keyname: str) -> bytes:
    query = dns.message.make_query("fo.example.net", "AXFR")
    query.use_tsig(keyring, keyname=keyname)
    return query.to_wire()


UNKNOWN_KEY = dns.tsigkeyring.from_text({"nobody.": ("hmac-sha256", SECRET)})


@pytest.mark.parametrize(
    "wire",
    [
        dns.message.make_query("fo.example.net", "AXFR").to_wire() + b"\x00",
        signed_axfr(KEYRING, "xfr.") + b"\x00",
        signed_axfr(UNKNOWN_KEY, "nobody.") + b"\x00",
        signed_axfr(UNKNOWN_KEY, "nobody.")[:-3],
    ],
    ids=["unsigned", "signed", "unknown key", "unknown key, cut short"],
)
def test_a_malformed_transfer_query_is_formerr_and_the_connection_stays(
    server: FodnsProcess, wire: bytes
) -> None:
    """A transfer query that does not parse (here: a byte after its last record, or its
    TSIG cut short) is FORMERR like any malformed query with a readable header
    (RFC 8945 §5.2: a TSIG that cannot be interpreted makes the message corrupt), not
    a closed connection, and not an exception in the log."""
    with socket.create_connection((server.dns_host, server.dns_port), timeout=5) as sock:
        reply = tcp_exchange(sock, wire)
        assert reply is not None, "connection closed instead of FORMERR"
        assert reply[:2] == wire[:2]
        assert dns.message.from_wire(reply).rcode() == dns.rcode.FORMERR
        soa = dns.message.make_query("fo.example.net", "SOA")
        after = tcp_exchange(sock, soa.to_wire())
        assert after is not None and dns.message.from_wire(after).answer
    time.sleep(0.1)  # let the log reader catch up
    assert server.log_events("transfer_failed") == []


@pytest.mark.parametrize("keyring", [UNKNOWN_KEY, WRONG], ids=["unknown key", "wrong secret"])
def test_a_tsig_error_echoes_the_question_as_asked(server: FodnsProcess, keyring: object) -> None:
    """NOTAUTH to a transfer query with a bad TSIG carries the query's own question,
    its class and letter case included (RFC 1035 §7.1)."""
    query = dns.message.make_query("Fo.Example.NET", "AXFR", rdclass="CH")
    keyname = "nobody." if keyring is UNKNOWN_KEY else "xfr."
    query.use_tsig(keyring, keyname=keyname)
    with socket.create_connection((server.dns_host, server.dns_port), timeout=5) as sock:
        wire = tcp_exchange(sock, query.to_wire())
    assert wire is not None
    reply = dns.message.from_wire(wire, keyring=False)
    assert reply.rcode() == dns.rcode.NOTAUTH
    [question] = reply.question
    assert question.name.labels == (b"Fo", b"Example", b"NET", b"")
    assert (question.rdtype, question.rdclass) == (dns.rdatatype.AXFR, dns.rdataclass.CH)
