"""Real Knot DNS and NSD secondaries of a fodns primary, configured with the blocks
docs/secondaries.md gives operators: every switch reaches them by NOTIFY and IXFR (how
fast is benchmarks/secondaries.py's to measure), a record set larger than a DNS message
reaches them whole, and a secondary with the wrong TSIG secret gets nothing."""

from __future__ import annotations

import math
import re
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import dns.exception
import dns.message
import dns.rcode
import dns.rdatatype
import dns.zone
import pytest

from fodns.config import load_config
from fodns.notify import FIRST_WAIT, MAX_TRIES, MAX_WAIT
from tests.secondaries import (
    GUIDE,
    GUIDE_PRIMARY,
    GUIDE_SECRET,
    ZONE,
    KnotSecondary,
    NsdSecondary,
    Secondary,
    find_executable,
    guide_block,
)
from tests.support import EXAMPLE_ZONE, Api, FodnsProcess, wait_for
from tests.support.transfer import TOKEN, WRONG_SECRET, addresses, fill_store, transfer_options

SECONDARIES: dict[str, type[Secondary]] = {"knot": KnotSecondary, "nsd": NsdSecondary}
GROUP = f"shop.{ZONE}"
EU, US = "192.0.2.10", "198.51.100.7"
SWITCHES = 100
# How long one switch may take to reach the secondary before the test calls it lost:
# a bound on "never arrives", far above what it takes (milliseconds, with a stall of
# about a second now and then from Knot, by design), so a busy machine cannot fail it.
# The time it takes is benchmarks/secondaries.py's to measure.
ARRIVAL_LIMIT = 60.0
POLL_EVERY = 0.005
# What each secondary logs when the primary rejects its signature (NOTAUTH, BADSIG).
BAD_SIGNATURE_LOGGED = {"knot": "failed to verify TSIG", "nsd": "tsig error (Bad Signature)"}
StartFodns = Callable[..., FodnsProcess]


def start_primary(fodns_factory: StartFodns, directory: Path, secondary: Secondary) -> FodnsProcess:
    return fodns_factory(
        TOKEN, directory, zones=[(ZONE, EXAMPLE_ZONE)], **transfer_options(notify=secondary.port)
    )


@pytest.fixture(params=sorted(SECONDARIES))
def pair(
    request: pytest.FixtureRequest, tmp_path: Path, fodns_factory: StartFodns
) -> Iterator[tuple[FodnsProcess, Secondary]]:
    """fodns and one secondary pulling from it, both running (fodns_factory stops fodns)."""
    secondary = SECONDARIES[request.param](tmp_path / request.param)
    primary = start_primary(fodns_factory, tmp_path / "fodns", secondary)
    try:
        secondary.start(primary.dns_port)
        yield primary, secondary
    finally:
        secondary.stop()


def post(primary: FodnsProcess, path: str, body: object, status: int) -> None:
    Api(primary, TOKEN).ok("POST", path, body, status)


def answers(secondary: Secondary, address: str) -> bool:
    try:
        response = secondary.query(GROUP, "A", timeout=0.2)
    except (dns.exception.DNSException, OSError):
        return False
    return {rdata.to_text() for rrset in response.answer for rdata in rrset} == {address}


def seconds_until_answered(secondary: Secondary, address: str, limit: float) -> float | None:
    """Seconds until the secondary answers the group with `address`, asking every 5 ms;
    None if it does not within `limit`."""
    start = time.monotonic()
    while (elapsed := time.monotonic() - start) < limit:
        if answers(secondary, address):
            return elapsed
        time.sleep(POLL_EVERY)
    return None


def primary_serial(primary: FodnsProcess) -> int:
    response = primary.udp(dns.message.make_query(ZONE, "SOA"))
    return int(response.answer[0][0].serial)


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(len(ordered) * fraction) - 1)]


def log_tail(secondary: Secondary, lines: int = 25) -> str:
    return "\n".join(secondary.log_text().splitlines()[-lines:])


def primary_complaints(primary: FodnsProcess) -> str:
    """What fodns logged above info level: the other side of a failed transfer."""
    return "".join(line for line in primary.stderr_lines if '"level": "info"' not in line)[-3000:]


def test_every_switch_reaches_the_secondary_by_ixfr(
    pair: tuple[FodnsProcess, Secondary],
) -> None:
    primary, secondary = pair
    assert secondary.wait_serial(primary_serial(primary), timeout=30), (
        f"{secondary.name} did not load the zone:\n{log_tail(secondary)}"
    )
    post(primary, "/v1/apps", {"name": "eu", "web_servers": [EU]}, 201)
    post(primary, "/v1/apps", {"name": "us", "web_servers": [US]}, 201)
    post(primary, "/v1/groups", {"label": "shop", "primary": "eu", "backup": "us"}, 201)
    assert seconds_until_answered(secondary, EU, ARRIVAL_LIMIT) is not None, (
        f"{secondary.name} does not serve the new group:\n{log_tail(secondary)}"
    )

    latencies: list[float] = []
    switch_serials: list[int] = []
    for count in range(SWITCHES):
        side, address = ("backup", US) if count % 2 == 0 else ("primary", EU)
        post(primary, "/v1/groups/shop/switch", {"to": side}, 200)
        latency = seconds_until_answered(secondary, address, ARRIVAL_LIMIT)
        assert latency is not None, (
            f"switch {count + 1} to {side} not served by {secondary.name} within "
            f"{ARRIVAL_LIMIT} s of the API's reply:\n{log_tail(secondary)}\n"
            f"fodns:\n{primary_complaints(primary)}"
        )
        latencies.append(latency)
        switch_serials.append(primary_serial(primary))
    print(
        f"\n{secondary.name}: {SWITCHES} switches served "
        f"p50 {percentile(latencies, 0.50) * 1000:.1f} ms, "
        f"p99 {percentile(latencies, 0.99) * 1000:.1f} ms, "
        f"max {max(latencies) * 1000:.1f} ms after the API's reply"
    )

    # The secondary writes its log (and the tap its record) a moment after it serves
    # the serial: wait for the last switch's line before reading them.
    assert wait_for(
        lambda: switch_serials[-1] in {serial for _, serial in secondary.transfers()}, 30
    ), f"{secondary.name} never logged taking serial {switch_serials[-1]}:\n{log_tail(secondary)}"
    transfers = secondary.transfers()
    sent = [
        (e["type"], e["style"], e["client_serial"]) for e in primary.log_events("zone_transferred")
    ]
    first_load, updates = transfers[0], transfers[1:]
    assert first_load[0] == "AXFR", transfers
    not_incremental = [t for t in updates if t[0] != "IXFR"]
    summary = (
        f"{secondary.name} took {len(updates)} updates after the first load: "
        f"{len(updates) - len(not_incremental)} by IXFR, {len(not_incremental)} otherwise, "
        f"first few {not_incremental[:3]}; fodns sent {sent[-8:]}"
        f"\n{log_tail(secondary, 60)}\nfodns:\n{primary_complaints(primary)}"
    )
    assert not not_incremental, summary
    # Each switch was served above; a secondary may take two versions in one IXFR
    # (RFC 1995 §4 allows several difference sequences), so it is not asked to log
    # every serial, only to have taken the last one by IXFR, and fodns to have
    # answered every IXFR it was asked with differences.
    assert updates[-1] == ("IXFR", switch_serials[-1]), summary
    asked = [(style, serial) for kind, style, serial in sent if kind == "IXFR"]
    assert asked and all(style in ("incremental", "up-to-date") for style, _ in asked), summary


class NsdWritingItsZoneFile(NsdSecondary):
    """NSD that writes each zone it transfers to its zone file within a second (by
    default it does so hourly), so that a test can read what it took in."""

    def preamble(self) -> str:
        # After `database:`, or the database's default wins (nsd.conf(5)).
        database = '    database: ""\n'
        assert database in super().preamble()
        return super().preamble().replace(database, database + "    zonefiles-write: 1\n")


def secondary_zone_file(secondary: Secondary) -> dns.zone.Zone | None:
    """The zone as the secondary wrote it to its own zone file, once it is complete."""
    path = secondary.directory / f"{ZONE}.zone"
    try:
        return dns.zone.from_file(str(path), origin=f"{ZONE}.", relativize=True)
    except (OSError, dns.exception.DNSException):
        return None  # not there yet, or being written


@pytest.mark.parametrize("name", sorted(SECONDARIES))
def test_a_record_set_larger_than_a_message_reaches_the_secondary(
    fodns_factory: StartFodns, tmp_path: Path, name: str
) -> None:
    """A group whose app has 3,000 IPv6 addresses is 120 KB of records, more than a
    DNS message holds: fodns spreads the set over several messages (RFC 5936 §2.2),
    and the secondary takes it whole (it can serve it only as TC or SERVFAIL, so its
    own copy of the zone is read from the zone file it writes)."""
    huge = addresses(6, 3000)
    (tmp_path / "fodns").mkdir()
    fill_store(
        tmp_path / "fodns" / "fodns.db", {"huge": huge, "eu": [EU]}, {"huge": "huge", "shop": "eu"}
    )
    kind = NsdWritingItsZoneFile if name == "nsd" else SECONDARIES[name]
    secondary = kind(tmp_path / name)
    primary = start_primary(fodns_factory, tmp_path / "fodns", secondary)
    try:
        secondary.start(primary.dns_port)
        assert secondary.wait_serial(primary_serial(primary), timeout=30), log_tail(secondary)
        # Asked until answered (bounded): one query's 0.2 s can fall while NSD is busy
        # writing the 120 KB zone file it took in, with other tests sharing the CPUs.
        assert wait_for(lambda: answers(secondary, EU), timeout=10), log_tail(secondary)

        def taken_whole() -> bool:
            zone = secondary_zone_file(secondary)
            rdataset = zone.get_rdataset("huge", "AAAA") if zone else None
            return rdataset is not None and {r.to_text() for r in rdataset} == set(huge)

        assert wait_for(taken_whole, timeout=30), log_tail(secondary)
    finally:
        secondary.stop()


@pytest.mark.parametrize("name", sorted(SECONDARIES))
def test_a_secondary_with_the_wrong_secret_gets_nothing(
    fodns_factory: StartFodns, tmp_path: Path, name: str
) -> None:
    secondary = SECONDARIES[name](tmp_path / name, secret=WRONG_SECRET)
    primary = start_primary(fodns_factory, tmp_path / "fodns", secondary)
    try:
        secondary.start(primary.dns_port)
        post(primary, "/v1/groups", {"label": "shop"}, 201)  # a change, and a NOTIFY
        complaint = BAD_SIGNATURE_LOGGED[name]
        assert wait_for(lambda: complaint in secondary.log_text(), timeout=30), log_tail(secondary)
        response = secondary.query(ZONE, "SOA")
        soa = [r for r in response.answer if r.rdtype == dns.rdatatype.SOA]
        assert response.rcode() == dns.rcode.SERVFAIL or not soa, response
        assert secondary.serial() is None
        assert secondary.transfers() == []
        assert wait_for(lambda: primary.log_events("transfer_refused"), timeout=30), (
            "fodns refused the transfer without logging transfer_refused"
        )
    finally:
        secondary.stop()


@pytest.mark.parametrize(
    ("marker", "check"),
    [
        ("yaml title=knot.conf", ["knotc", "-c", "{file}", "conf-check"]),
        ("text title=nsd.conf", ["nsd-checkconf", "{file}"]),
    ],
)
def test_the_guide_blocks_pass_the_daemons_own_checks(
    tmp_path: Path, marker: str, check: list[str]
) -> None:
    """As an operator pastes them: documentation addresses, placeholder secret."""
    config = tmp_path / "secondary.conf"
    config.write_text(guide_block(marker))
    command = [find_executable(check[0]), *(a.format(file=config) for a in check[1:])]
    result = subprocess.run(command, capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_guide_fodns_block_is_a_valid_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The primary's block loads, with its secret from the credential the guide sets up
    (as systemd lays it out in $CREDENTIALS_DIRECTORY), and its NOTIFYs are signed with
    the transfer key."""
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    (credentials / "tsig-xfr").write_text(GUIDE_SECRET + "\n")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(credentials))
    block = guide_block("toml title=fodns.toml")
    assert GUIDE_SECRET not in block, "the guide's fodns.toml must hold no secret"
    assert "LoadCredential=tsig-xfr:/etc/fodns/tsig-xfr.key" in GUIDE.read_text()
    config_file = tmp_path / "fodns.toml"
    config_file.write_text(block)
    config = load_config(config_file)
    [zone] = config.zones
    assert zone.name == ZONE
    assert [peer.key for peer in zone.allow_transfer] == ["xfr", "xfr"]
    assert [(t.host, t.port, t.key) for t in zone.notify] == [
        ("198.51.100.1", 53, "xfr"),
        ("198.51.100.2", 53, "xfr"),
    ]
    assert (config.tsig["xfr"].algorithm, config.tsig["xfr"].secret) == (
        "hmac-sha256",
        GUIDE_SECRET,
    )


@pytest.mark.parametrize("marker", ["nft title=primary.nft", "nft title=secondary.nft"])
def test_the_guide_firewall_rules_pass_nft_check(tmp_path: Path, marker: str) -> None:
    """`nft -c` parses and checks a ruleset without loading it: the host's own rules
    are never touched."""
    rules = tmp_path / "rules.nft"
    rules.write_text(guide_block(marker))
    command = [find_executable("nft"), "-c", "-f", str(rules)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_guide_firewall_rules_name_the_guide_hosts() -> None:
    """The primary lets in exactly the secondaries its fodns.toml allows transfers to,
    and each secondary lets in NOTIFY from the primary the Knot and NSD blocks name."""
    allowed = re.findall(r'address = "([\d.]+)/32"', guide_block("toml title=fodns.toml"))
    primary_rules = guide_block("nft title=primary.nft")
    (secondaries,) = re.findall(r"define secondaries = \{ (.*) \}", primary_rules)
    assert sorted(secondaries.split(", ")) == sorted(allowed) == ["198.51.100.1", "198.51.100.2"]
    assert "8053" not in primary_rules.replace("127.0.0.1:8053", "")  # loopback only
    assert f"define primary = {GUIDE_PRIMARY}\n" in guide_block("nft title=secondary.nft")


def test_the_guide_states_the_notify_resend_span() -> None:
    """The span the guide gives is the one fodns/notify.py makes: MAX_TRIES waits of
    FIRST_WAIT doubling to MAX_WAIT, each times a jitter factor in [0.9, 1.1]."""

    def span(jitter: float) -> float:
        wait, total = FIRST_WAIT, 0.0
        for _ in range(MAX_TRIES):
            total += wait
            wait = min(MAX_WAIT, wait * 2) * jitter
        return total

    text = " ".join(GUIDE.read_text().split())
    assert f"an unanswered NOTIFY {MAX_TRIES} times in all" in text
    assert f"waits {FIRST_WAIT} s for the answer" in text and f"up to {MAX_WAIT:g} s" in text
    shortest, usual, longest = span(0.9), span(1.0), span(1.1)
    assert f"about {round(usual, -1):.0f} s after the first send" in text
    assert f"({shortest:.0f} to {longest:.0f} s, with the variation)" in text
    assert text.count(f"about {round(usual, -1):.0f} s") == 2  # and where a secondary is cut off
