"""Zone transfers out of fodns (AXFR over TCP, RFC 5936; IXFR, RFC 1995) with TSIG
(RFC 8945), and the allow_transfer list: dnspython's transfer client plays the
secondary, with one DNS worker and with two."""

from __future__ import annotations

import signal
import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import dns.tsig
import dns.tsigkeyring
import dns.xfr
import dns.zone
import pytest

from tests.support import (
    EXAMPLE_ZONE,
    KEYRING,
    SECRET,
    Api,
    FodnsProcess,
    start_with_config,
    tcp_exchange,
    wait_for,
)
from tests.support.transfer import (
    TOKEN,
    WRONG_KEYRING,
    addresses,
    fill_store,
    ixfr,
    new_event,
    new_transfer_event,
    pull,
    same_records,
    served,
    transfer_messages,
    transfer_options,
    transfers_logged,
)

StartFodns = Callable[..., FodnsProcess]


@pytest.fixture
def server(fodns_factory: StartFodns, workers: int) -> FodnsProcess:
    """fodns allowing transfers signed with the xfr key, with group shop on app eu and
    its backup us behind a load balancer: for a test that changes the zone."""
    running = fodns_factory(TOKEN, workers=workers, **transfer_options())
    add_shop(Api(running, TOKEN), backup_head={"load_balancer": ["lb.us.example.com"]})
    return running


@pytest.fixture(scope="module", params=[1, 2], ids=["workers1", "workers2"])
def shared(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[FodnsProcess]:
    """The same, in each mode, shared by the tests that do not change the zone (their
    log checks count from what was logged before them)."""
    directory = tmp_path_factory.mktemp("shared")
    running = start_with_config(directory, TOKEN, workers=request.param, **transfer_options())
    try:
        add_shop(Api(running, TOKEN), backup_head={"load_balancer": ["lb.us.example.com"]})
        yield running
    finally:
        assert running.stop() == 0, "fodns did not shut down cleanly on SIGTERM"


def add_shop(api: Api, backup_head: dict[str, list[str]] | None = None) -> None:
    """Apps eu (192.0.2.10) and us (192.0.2.20, or `backup_head`), group shop on eu."""
    api.ok("POST", "/v1/apps", {"name": "eu", "web_servers": ["192.0.2.10"]}, 201)
    api.ok(
        "POST", "/v1/apps", {"name": "us", **(backup_head or {"web_servers": ["192.0.2.20"]})}, 201
    )
    api.ok("POST", "/v1/groups", {"label": "shop", "primary": "eu", "backup": "us"}, 201)


def switch(server: FodnsProcess, to: str, label: str = "shop") -> None:
    Api(server, TOKEN).ok("POST", f"/v1/groups/{label}/switch", {"to": to})


def test_a_signed_axfr_carries_the_zone_file_and_the_groups(shared: FodnsProcess) -> None:
    zone = pull(shared)
    served_soa = shared.tcp(dns.message.make_query("fo.example.net", "SOA"))
    assert zone.get_soa().serial == served_soa.answer[0][0].serial
    assert served(zone, "www", "A") == {"192.0.2.10", "192.0.2.11"}
    assert served(zone, "shop", "A") == {"192.0.2.10"}
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
    switch(server, "backup")
    zone = pull(server)
    assert zone.get_soa().serial > before
    assert zone.find_rdataset("shop", "CNAME")[0].target.to_text() == "lb.us.example.com."


def test_ixfr_sends_only_the_changes_since_the_secondary_serial(server: FodnsProcess) -> None:
    api = Api(server, TOKEN)
    secondary = dns.zone.Zone("fo.example.net.")
    assert ixfr(server, secondary, serial=None)["type"] == "AXFR"  # the first copy
    first = secondary.get_soa().serial
    switch(server, "backup")
    api.ok("POST", "/v1/apps", {"name": "ap", "web_servers": ["2001:db8::7"]}, 201)
    api.ok("POST", "/v1/groups", {"label": "new", "primary": "ap"}, 201)
    switch(server, "primary")
    sent = ixfr(server, secondary)
    assert (sent["type"], sent["style"], sent["client_serial"]) == ("IXFR", "incremental", first)
    assert secondary.get_soa().serial == first + 3
    assert same_records(secondary, pull(server))
    assert served(secondary, "new", "AAAA") == {"2001:db8::7"}
    assert served(secondary, "shop", "A") == {"192.0.2.10"}
    assert secondary.get_rdataset("shop", "CNAME") is None


def test_ixfr_difference_sequences_are_the_journal(server: FodnsProcess) -> None:
    """RFC 1995 §4: SOA new, then per change SOA old, deletions, SOA next, additions."""
    serial = pull(server).get_soa().serial
    switch(server, "backup")
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


def test_ixfr_falls_back_to_the_whole_zone_when_history_is_gone(shared: FodnsProcess) -> None:
    """RFC 1995 §4: a serial the journal does not reach back to gets the zone in AXFR form."""
    secondary = dns.zone.Zone("fo.example.net.")
    sent = ixfr(shared, secondary, serial=1)
    assert (sent["type"], sent["style"], sent["client_serial"]) == ("IXFR", "full", 1)
    assert same_records(secondary, pull(shared))


def first_message_answer(server: FodnsProcess, serial: int) -> list[dns.rrset.RRset]:
    """The answer records of the first message of a signed IXFR from `serial`."""
    query, _ = dns.xfr.make_query(
        dns.zone.Zone("fo.example.net."), serial=serial, keyring=KEYRING, keyname="xfr."
    )
    with socket.create_connection((server.dns_host, server.dns_port), timeout=10) as sock:
        wire = tcp_exchange(sock, query.to_wire())
    assert wire is not None, "connection closed instead of a reply"
    reply = dns.message.from_wire(
        wire, keyring=KEYRING, request_mac=query.mac, multi=True, one_rr_per_rrset=True
    )
    assert reply.rcode() == dns.rcode.NOERROR
    return list(reply.answer)


def test_ixfr_whose_differences_outweigh_the_zone_is_the_whole_zone(server: FodnsProcess) -> None:
    """RFC 1995 §4: "If incremental zone transfer is not available [or] the entire
    history ... is larger than the entire zone", the reply is the zone in AXFR form:
    here more records changed (each switch removes one and adds one) than the zone
    has names."""
    secondary = pull(server)
    first = secondary.get_soa().serial
    names = len(secondary.nodes)
    switches = names // 2 + 1
    for count in range(switches):
        switch(server, "backup" if count % 2 == 0 else "primary")
    answer = first_message_answer(server, first)
    # AXFR form: the new SOA, then the zone's records, not the client's older SOA.
    assert answer[0].rdtype == dns.rdatatype.SOA
    assert answer[0][0].serial == first + switches
    assert answer[1].rdtype != dns.rdatatype.SOA, "a difference sequence, not the zone"
    sent = ixfr(server, secondary)
    assert (sent["style"], sent["client_serial"]) == ("full", first)
    assert same_records(secondary, pull(server))
    # Fewer changes than that still go as differences.
    latest = secondary.get_soa().serial
    switch(server, "backup" if switches % 2 == 0 else "primary")
    assert ixfr(server, secondary)["style"] == "incremental"
    assert secondary.get_soa().serial == latest + 1


@pytest.mark.parametrize("ahead_by", [0, 1, 1000, 2**31 - 1])
def test_a_secondary_ahead_of_the_primary_gets_the_soa_alone(
    shared: FodnsProcess, ahead_by: int
) -> None:
    """RFC 1995 §2: "If an IXFR query with the same or newer version number than that
    of the server is received, it is replied to with a single SOA record of the
    server's current version" (newer in serial arithmetic, RFC 1982): a secondary as
    new as we are (ahead_by 0) has nothing to fetch, and one left ahead, by a restore
    from backup say, is told our serial and given nothing to apply; nothing fodns could
    send would be a difference from a version it never had."""
    serial = pull(shared).get_soa().serial
    ahead = (serial + ahead_by) % 2**32
    before = len(transfers_logged(shared))
    answer = first_message_answer(shared, ahead)
    assert [rrset.rdtype for rrset in answer] == [dns.rdatatype.SOA]
    assert answer[0][0].serial == serial
    logged = new_transfer_event(shared, before, type="IXFR", client_serial=ahead)
    assert logged["style"] == "up-to-date"


def test_a_serial_more_than_half_the_space_ahead_is_behind(shared: FodnsProcess) -> None:
    """RFC 1982 §3.2: a serial 2**31 + 1 above ours is *below* it, so that secondary
    is behind by serial arithmetic, and is brought up to date with the whole zone."""
    serial = pull(shared).get_soa().serial
    behind = (serial + 2**31 + 1) % 2**32
    secondary = dns.zone.Zone("fo.example.net.")
    sent = ixfr(shared, secondary, serial=behind)
    assert (sent["style"], sent["client_serial"]) == ("full", behind)
    assert same_records(secondary, pull(shared))


def test_ixfr_over_udp_is_the_soa_alone_and_the_secondary_goes_to_tcp(
    server: FodnsProcess,
) -> None:
    """RFC 1995 §2: over UDP, a reply that does not fit is "a single SOA record of the
    server's current version to inform the client that a TCP query should be
    initiated". fodns sends its differences over TCP only: every UDP IXFR gets that
    SOA, signed when asked signed, and a secondary then does the IXFR over TCP."""
    secondary = pull(server)
    first = secondary.get_soa().serial
    switch(server, "backup")
    query, _ = dns.xfr.make_query(secondary, keyring=KEYRING, keyname="xfr.")
    reply = server.udp(query)  # dnspython checks the reply's TSIG
    assert reply.rcode() == dns.rcode.NOERROR
    assert reply.had_tsig
    assert [(rrset.rdtype, rrset[0].serial) for rrset in reply.answer] == [
        (dns.rdatatype.SOA, first + 1)
    ]
    assert reply.question[0].rdtype == dns.rdatatype.IXFR
    # dnspython tries UDP first and falls back to TCP on exactly that reply.
    sent = ixfr(server, secondary, udp_mode=dns.query.UDPMode.TRY_FIRST)
    assert (sent["type"], sent["style"], sent["client_serial"]) == ("IXFR", "incremental", first)
    assert secondary.get_soa().serial == first + 1
    assert served(secondary, "shop", "CNAME") == {"lb.us.example.com."}
    # Current already: the same lone SOA says there is nothing to fetch.
    query, _ = dns.xfr.make_query(secondary, keyring=KEYRING, keyname="xfr.")
    current = server.udp(query)
    assert [(rrset.rdtype, rrset[0].serial) for rrset in current.answer] == [
        (dns.rdatatype.SOA, first + 1)
    ]


def test_ixfr_over_udp_of_a_name_not_a_zone_is_refused(shared: FodnsProcess) -> None:
    query = dns.message.make_query("shop.fo.example.net", "IXFR")
    query.authority.append(
        dns.rrset.from_text(
            "shop.fo.example.net.", 0, "IN", "SOA", "ns1. hostmaster. 1 3600 600 86400 60"
        )
    )
    assert shared.udp(query).rcode() == dns.rcode.REFUSED


def test_ixfr_without_the_secondary_soa_is_formerr(shared: FodnsProcess) -> None:
    query = dns.message.make_query("fo.example.net.", "IXFR")
    query.use_tsig(KEYRING, keyname="xfr.")
    assert shared.tcp(query).rcode() == dns.rcode.FORMERR


def test_the_history_survives_a_restart(
    fodns_factory: StartFodns, tmp_path: Path, workers: int
) -> None:
    directory = tmp_path / "fodns"
    running = fodns_factory(TOKEN, directory, workers=workers, **transfer_options())
    add_shop(Api(running, TOKEN))
    secondary = pull(running)
    switch(running, "backup")
    assert running.stop() == 0
    running = fodns_factory(TOKEN, directory, workers=workers, **transfer_options())
    assert ixfr(running, secondary)["style"] == "incremental"
    assert served(secondary, "shop", "A") == {"192.0.2.20"}


def test_every_worker_answers_ixfr_from_the_journal(fodns_factory: StartFodns) -> None:
    running = fodns_factory(TOKEN, workers=2, **transfer_options())
    add_shop(Api(running, TOKEN))
    base = pull(running)
    switch(running, "backup")
    for _ in range(8):  # new connections, spread over both workers by SO_REUSEPORT
        secondary = dns.zone.Zone("fo.example.net.")
        for name, rdataset in base.iterate_rdatasets():
            secondary.replace_rdataset(name, rdataset)
        assert ixfr(running, secondary)["style"] == "incremental"
        assert served(secondary, "shop", "A") == {"192.0.2.20"}


def zones_reloaded_after(server: FodnsProcess, before: int, workers: int) -> bool:
    """Each DNS process logs its own reload."""
    return wait_for(lambda: len(server.log_events("zones_reloaded")) >= before + workers)


def test_an_edited_zone_file_moves_the_serial_and_ends_the_history(
    fodns_factory: StartFodns, tmp_path: Path, workers: int
) -> None:
    """The journal holds no zone-file edits: after one, older serials get the whole zone,
    even when the operator did not raise the file's serial."""
    zone_file = tmp_path / "fo.example.net.zone"
    zone_file.write_text(EXAMPLE_ZONE.read_text())
    running = fodns_factory(
        TOKEN, workers=workers, zones=[("fo.example.net", zone_file)], **transfer_options()
    )
    secondary = pull(running)
    before = secondary.get_soa().serial
    zone_file.write_text(zone_file.read_text() + 'added 300 IN TXT "edited"\n')
    running.process.send_signal(signal.SIGHUP)
    assert zones_reloaded_after(running, 0, workers)
    assert wait_for(lambda: pull(running).get_soa().serial == before + 1)
    assert ixfr(running, secondary)["style"] == "full"
    assert secondary.get_rdataset("added", "TXT") is not None
    # Reloading the same file again changes nothing.
    reloads = len(running.log_events("zones_reloaded"))
    running.process.send_signal(signal.SIGHUP)
    assert zones_reloaded_after(running, reloads, workers)
    assert pull(running).get_soa().serial == before + 1


def test_a_wrong_key_is_refused_with_badsig(shared: FodnsProcess) -> None:
    """NOTAUTH with BADSIG, which dnspython reports as the peer's verdict: a timeout or
    a closed connection is not that refusal, and fails here."""
    before = len(shared.log_events("transfer_refused"))
    with pytest.raises(dns.tsig.PeerBadSignature):
        pull(shared, keyring=WRONG_KEYRING)
    refused = new_event(shared, "transfer_refused", before, key="xfr.")
    assert (refused["key"], refused["reason"]) == ("xfr.", "bad TSIG signature")


def test_an_unsigned_request_is_refused_where_a_key_is_required(shared: FodnsProcess) -> None:
    before = len(shared.log_events("transfer_refused"))
    with pytest.raises(dns.query.TransferError) as refused:
        pull(shared, keyring=None)
    assert refused.value.rcode == dns.rcode.REFUSED
    logged = new_event(shared, "transfer_refused", before, key=None)
    assert (logged["key"], logged["reason"]) == (None, "peer or key not in allow_transfer")


def test_an_address_not_listed_is_refused(fodns_factory: StartFodns) -> None:
    running = fodns_factory(TOKEN, **transfer_options('{ address = "127.0.0.2/32", key = "xfr" }'))
    with pytest.raises(dns.query.TransferError) as refused:
        pull(running)
    assert refused.value.rcode == dns.rcode.REFUSED


def test_an_entry_without_a_key_admits_that_address_unsigned_and_no_other(
    fodns_factory: StartFodns, workers: int
) -> None:
    """`allow_transfer = [{ address = ... }]` without `key`: that network may transfer
    unsigned (or signed, with any key fodns has); other addresses are refused."""
    running = fodns_factory(
        TOKEN, workers=workers, **transfer_options('{ address = "127.0.0.2/32" }')
    )
    add_shop(Api(running, TOKEN))
    zone = pull(running, keyring=None, source="127.0.0.2")
    assert served(zone, "shop", "A") == {"192.0.2.10"}
    assert same_records(zone, pull(running, source="127.0.0.2"))
    for keyring in (None, KEYRING):
        with pytest.raises(dns.query.TransferError) as refused:
            pull(running, keyring=keyring, source="127.0.0.1")
        assert refused.value.rcode == dns.rcode.REFUSED
    assert wait_for(lambda: len(running.log_events("transfer_refused")) == 2)
    assert {e["peer"] for e in running.log_events("transfer_refused")} == {"127.0.0.1"}
    assert {e["peer"] for e in transfers_logged(running)} == {"127.0.0.2"}


def test_axfr_over_udp_is_refused(shared: FodnsProcess) -> None:
    reply = shared.udp(dns.message.make_query("fo.example.net", "AXFR"))
    assert reply.rcode() == dns.rcode.REFUSED


def test_a_large_zone_streams_in_many_signed_messages(fodns_factory: StartFodns) -> None:
    running = fodns_factory(TOKEN, **transfer_options())
    api = Api(running, TOKEN)
    api.ok("POST", "/v1/apps", {"name": "eu", "web_servers": ["192.0.2.10", "192.0.2.11"]}, 201)
    for index in range(600):
        api.ok("POST", "/v1/groups", {"label": f"g{index}", "primary": "eu"}, 201)
    messages = transfer_messages(running)
    assert len(messages) > 1, "the zone should need several messages"
    zone = dns.zone.from_xfr(iter(messages))
    assert all(zone.find_rdataset(f"g{index}", "A") for index in range(600))


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_a_signed_query_with_a_configured_key_gets_a_signed_answer(
    shared: FodnsProcess, transport: str
) -> None:
    """Secondaries sign their SOA checks (Knot before each IXFR): RFC 8945 §5.3."""
    query = dns.message.make_query("fo.example.net", "SOA")
    query.use_tsig(KEYRING, keyname="xfr.")
    # dnspython verifies the reply's TSIG against the query's MAC, and raises if the
    # reply is unsigned or the MAC is wrong.
    reply = getattr(shared, transport)(query)
    assert reply.rcode() == dns.rcode.NOERROR
    assert reply.had_tsig
    assert reply.answer[0].rdtype == dns.rdatatype.SOA
    shop = dns.message.make_query("shop.fo.example.net", "A")
    shop.use_tsig(KEYRING, keyname="xfr.")
    assert {r.to_text() for r in getattr(shared, transport)(shop).answer[0]} == {"192.0.2.10"}


def test_a_query_signed_with_a_wrong_secret_is_notauth_badsig(shared: FodnsProcess) -> None:
    query = dns.message.make_query("fo.example.net", "SOA")
    query.use_tsig(WRONG_KEYRING, keyname="xfr.")
    wire = shared.raw_udp(query.to_wire(), timeout=5.0)
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


def no_transfer_failed(server: FodnsProcess) -> None:
    """No `transfer_failed` in the log, read only once a later line is in: one more
    transfer's own `zone_transferred` (with one worker the log is in order)."""
    before = len(transfers_logged(server))
    pull(server)
    assert wait_for(lambda: len(transfers_logged(server)) > before)
    assert server.log_events("transfer_failed") == []


def test_groups_on_an_app_with_thousands_of_addresses_transfer_whole(
    fodns_factory: StartFodns, tmp_path: Path, workers: int
) -> None:
    """An app with 1,000 IPv4 and 1,000 IPv6 addresses: each group on it is 68 KB of
    records, more than one message holds, so its A and AAAA sets go in separate
    messages; one with 3,000 IPv6 addresses is a set of 120 KB, larger than any
    message, so its records are spread over several."""
    wide = addresses(4, 1000) + addresses(6, 1000)
    huge = addresses(6, 3000)
    directory = tmp_path / "fodns"
    directory.mkdir()
    fill_store(
        directory / "fodns.db",
        {"wide": wide, "huge": huge, "eu": ["192.0.2.10"]},
        {"wide-1": "wide", "shop": "eu", "wide-2": "wide", "huge": "huge", "after": "eu"},
    )
    running = fodns_factory(TOKEN, directory, workers=workers, **transfer_options())
    zone = dns.zone.from_xfr(iter(transfer_messages(running)))
    for label in ("wide-1", "wide-2"):
        assert served(zone, label, "A") == set(addresses(4, 1000)), label
        assert served(zone, label, "AAAA") == set(addresses(6, 1000)), label
    assert served(zone, "huge", "AAAA") == set(huge)
    assert served(zone, "shop", "A") == served(zone, "after", "A") == {"192.0.2.10"}
    assert served(zone, "www", "A") == {"192.0.2.10", "192.0.2.11"}
    if workers == 1:
        no_transfer_failed(running)


def test_ixfr_of_a_switch_to_a_huge_web_head_arrives_whole(
    fodns_factory: StartFodns, tmp_path: Path
) -> None:
    """The same splitting for IXFR's difference sequences (RFC 1995 §4)."""
    huge = addresses(6, 3000)
    # Enough groups that 3,001 changed records do not outweigh the zone (RFC 1995 §4).
    small = {f"g{index}": "eu" for index in range(3100)}
    directory = tmp_path / "fodns"
    directory.mkdir()
    fill_store(
        directory / "fodns.db", {"eu": ["192.0.2.10"], "huge": huge}, {"shop": "eu", **small}
    )
    running = fodns_factory(TOKEN, directory, **transfer_options())
    secondary = pull(running)
    Api(running, TOKEN).ok("PATCH", "/v1/groups/shop", {"backup": "huge"})
    switch(running, "backup")
    assert ixfr(running, secondary)["style"] == "incremental"
    assert served(secondary, "shop", "AAAA") == set(huge)
    assert served(secondary, "shop", "A") == set()
    assert same_records(secondary, pull(running))


def metric(server: FodnsProcess, name: str) -> float:
    status, text = server.http_get("/metrics")
    assert status == 200
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not in /metrics")


def test_a_record_too_big_for_any_message_is_left_out_and_reported(
    fodns_factory: StartFodns, tmp_path: Path, workers: int
) -> None:
    """A TXT record of 65,530 octets of data fits in no message with a header and the
    question: the transfer goes on without it, and says so once, with a counter."""
    strings = " ".join(['"' + "x" * 255 + '"'] * 255 + ['"' + "y" * 249 + '"'])
    zone_file = tmp_path / "fo.example.net.zone"
    zone_file.write_text(EXAMPLE_ZONE.read_text() + f"huge 300 IN TXT {strings}\n")
    running = fodns_factory(
        TOKEN, workers=workers, zones=[("fo.example.net", zone_file)], **transfer_options()
    )
    add_shop(Api(running, TOKEN))
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
    if workers == 1:
        no_transfer_failed(running)


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
    shared: FodnsProcess, wire: bytes
) -> None:
    """A transfer query that does not parse (here: a byte after its last record, or its
    TSIG cut short) is FORMERR like any malformed query with a readable header
    (RFC 8945 §5.2: a TSIG that cannot be interpreted makes the message corrupt), not
    a closed connection, and not an exception in the log."""
    with socket.create_connection((shared.dns_host, shared.dns_port), timeout=5) as sock:
        reply = tcp_exchange(sock, wire)
        assert reply is not None, "connection closed instead of FORMERR"
        assert reply[:2] == wire[:2]
        assert dns.message.from_wire(reply).rcode() == dns.rcode.FORMERR
        soa = dns.message.make_query("fo.example.net", "SOA")
        after = tcp_exchange(sock, soa.to_wire())
        assert after is not None and dns.message.from_wire(after).answer
    no_transfer_failed(shared)


@pytest.mark.parametrize(
    "keyring", [UNKNOWN_KEY, WRONG_KEYRING], ids=["unknown key", "wrong secret"]
)
def test_a_tsig_error_echoes_the_question_as_asked(shared: FodnsProcess, keyring: object) -> None:
    """NOTAUTH to a transfer query with a bad TSIG carries the query's own question,
    its class and letter case included (RFC 1035 §7.1)."""
    query = dns.message.make_query("Fo.Example.NET", "AXFR", rdclass="CH")
    keyname = "nobody." if keyring is UNKNOWN_KEY else "xfr."
    query.use_tsig(keyring, keyname=keyname)
    with socket.create_connection((shared.dns_host, shared.dns_port), timeout=5) as sock:
        wire = tcp_exchange(sock, query.to_wire())
    assert wire is not None
    reply = dns.message.from_wire(wire, keyring=False)
    assert reply.rcode() == dns.rcode.NOTAUTH
    [question] = reply.question
    assert question.name.labels == (b"Fo", b"Example", b"NET", b"")
    assert (question.rdtype, question.rdclass) == (dns.rdatatype.AXFR, dns.rdataclass.CH)
