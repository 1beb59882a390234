"""NOTIFY (RFC 1996) to secondaries: sent after each change, signed, resent until
answered, and coalesced under a burst. The secondary's side is a real UDP socket that
reads every message as it arrives, checks it with dnspython and the shared TSIG key,
and answers when the test lets it. A round is what fodns logs when it ends (answered,
refused or unanswered, with its serial and the attempt that ended it): counting rounds
and the messages each took, not messages in a time window, is what can fail."""

from __future__ import annotations

import json
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdatatype
import pytest

from fodns.notify import FIRST_WAIT
from fodns.store import Store, ZoneDefaults
from tests.support import (
    EXAMPLE_ZONE,
    Api,
    FodnsProcess,
    ask_every_worker,
    keyring_for,
    wait_for,
)
from tests.support.notify import NotifyReceiver
from tests.support.transfer import transfer_options

TOKEN = "notify-test-token"
StartFodns = Callable[..., FodnsProcess]
ROUND_ENDS = ("notify_answered", "notify_refused", "notify_unanswered")


def start(
    fodns_factory: StartFodns,
    receiver: NotifyReceiver,
    zone_file: Path = EXAMPLE_ZONE,
    workers: int = 1,
    algorithm: str = "hmac-sha256",
) -> FodnsProcess:
    return fodns_factory(
        TOKEN,
        workers=workers,
        zones=[("fo.example.net", zone_file)],
        **transfer_options(notify=receiver.port, algorithm=algorithm),
    )


def rounds(server: FodnsProcess) -> list[tuple[str, int, int | None]]:
    """Each NOTIFY round that ended, in order: (how, serial, attempt that ended it)."""
    return [
        (str(event["event"]), int(event["serial"]), event.get("attempt"))
        for event in map(server_event, server.stderr_lines)
        if event.get("event") in ROUND_ENDS
    ]


def server_event(line: str) -> dict[str, Any]:
    try:
        event = json.loads(line)
    except json.JSONDecodeError:
        return {}
    return event if isinstance(event, dict) else {}


def answered_serials(server: FodnsProcess) -> list[int]:
    return [int(str(e["serial"])) for e in server.log_events("notify_answered")]


def soa_serial(server: FodnsProcess) -> int:
    return int(server.udp(dns.message.make_query("fo.example.net", "SOA")).answer[0][0].serial)


def serials_served(server: FodnsProcess) -> set[int]:
    """The SOA serial as every DNS process serves it (fresh sockets reach each worker)."""
    replies = ask_every_worker(server, dns.message.make_query("fo.example.net", "SOA"))
    return {int(reply.answer[0][0].serial) for reply in replies}


@pytest.mark.parametrize("algorithm", ["hmac-sha256", "hmac-sha512"])
def test_a_change_sends_a_signed_notify(fodns_factory: StartFodns, algorithm: str) -> None:
    """Signed with the key of the allow_transfer entry, in that key's algorithm."""
    receiver = NotifyReceiver(keyring=keyring_for(algorithm))
    try:
        server = start(fodns_factory, receiver, algorithm=algorithm)
        Api(server, TOKEN).ok("POST", "/v1/groups", {"label": "shop"}, 201)
        assert wait_for(lambda: receiver.received)
        _, notify = receiver.received[0]
        assert notify.opcode() == dns.opcode.NOTIFY
        assert notify.flags & dns.flags.AA  # RFC 1996 §3.7
        assert notify.question[0].name.to_text() == "fo.example.net."
        assert notify.question[0].rdtype == dns.rdatatype.SOA
        assert notify.had_tsig and notify.keyname.to_text() == "xfr."
        assert notify.keyalgorithm == dns.name.from_text(algorithm)
        assert wait_for(lambda: rounds(server))
        assert rounds(server) == [("notify_answered", soa_serial(server), len(receiver.received))]
    finally:
        receiver.close()


def test_an_unanswered_notify_is_sent_again(fodns_factory: StartFodns) -> None:
    receiver = NotifyReceiver(ignore_first=1)
    try:
        server = start(fodns_factory, receiver)
        Api(server, TOKEN).ok("POST", "/v1/groups", {"label": "shop"}, 201)
        assert wait_for(lambda: rounds(server))
        assert rounds(server) == [("notify_answered", soa_serial(server), 2)]
        assert len(receiver.received) == 2
        (first_at, first), (second_at, second) = receiver.received
        assert first.question == second.question
        assert first.id != second.id  # a new message, not a copy
        # RFC 1996 §3.6: resent after a wait, not at once.
        assert second_at - first_at >= FIRST_WAIT * 0.8
    finally:
        receiver.close()


def test_a_burst_of_switches_is_coalesced(fodns_factory: StartFodns) -> None:
    """RFC 1996 §4.1: while a round waits on a slow secondary, twenty switches only
    mark the zone; one more round then tells it the latest serial. The secondary holds
    its answer until the burst is over, so the outcome does not depend on timing."""
    receiver = NotifyReceiver(answering=False)
    try:
        server = start(fodns_factory, receiver)
        api = Api(server, TOKEN)
        api.ok("POST", "/v1/apps", {"name": "eu", "web_servers": ["192.0.2.10"]}, 201)
        api.ok("POST", "/v1/apps", {"name": "us", "web_servers": ["198.51.100.7"]}, 201)
        api.ok("POST", "/v1/groups", {"label": "shop", "primary": "eu", "backup": "us"}, 201)
        first_serial = soa_serial(server)
        assert wait_for(lambda: receiver.received)  # the first round, held
        for count in range(20):
            side = "backup" if count % 2 == 0 else "primary"
            api.ok("POST", "/v1/groups/shop/switch", {"to": side})
        last_serial = soa_serial(server)
        assert last_serial == first_serial + 20
        receiver.answer()
        assert wait_for(lambda: last_serial in answered_serials(server), timeout=30)
        # One more change: its round comes after any the burst could have caused.
        api.ok("POST", "/v1/groups/shop/switch", {"to": "backup"})
        assert wait_for(lambda: last_serial + 1 in answered_serials(server), timeout=30)
        ended = rounds(server)
        assert [(how, serial) for how, serial, _ in ended] == [
            ("notify_answered", first_serial),
            ("notify_answered", last_serial),
            ("notify_answered", last_serial + 1),
        ], ended
        # Every NOTIFY the secondary read belongs to one of those rounds (the held
        # first one was resent until answered).
        assert len(receiver.received) == sum(attempt or 0 for _, _, attempt in ended)
    finally:
        receiver.close()


def test_a_reload_that_moves_the_serial_notifies(
    fodns_factory: StartFodns, tmp_path: Path, workers: int
) -> None:
    """SIGHUP with an edited zone file: the serial moves, so the secondaries are told,
    once; with workers, only once every worker serves the new serial. An unchanged
    reload tells them nothing. (A slow answer may make fodns resend within the round:
    that is the same round, told apart by its attempt count.)"""
    zone_file = tmp_path / "fo.example.net.zone"
    zone_file.write_text(EXAMPLE_ZONE.read_text())
    receiver = NotifyReceiver()
    try:
        server = start(fodns_factory, receiver, zone_file, workers)
        receiver.on_notify = lambda: serials_served(server)
        serial = soa_serial(server)
        server.process.send_signal(signal.SIGHUP)  # unchanged: no NOTIFY
        assert wait_for(lambda: len(server.log_events("zones_reloaded")) >= workers)
        zone_file.write_text(zone_file.read_text() + 'edited 300 IN TXT "yes"\n')
        server.process.send_signal(signal.SIGHUP)
        assert wait_for(lambda: serial + 1 in answered_serials(server), timeout=30)
        # One more change: its round comes after any the reloads could have caused.
        Api(server, TOKEN).ok("POST", "/v1/groups", {"label": "shop"}, 201)
        assert wait_for(lambda: serial + 2 in answered_serials(server), timeout=30)
        ended = rounds(server)
        assert [(how, s) for how, s, _ in ended] == [
            ("notify_answered", serial + 1),
            ("notify_answered", serial + 2),
        ], ended
        assert len(receiver.received) == sum(attempt or 0 for _, _, attempt in ended)
        # When told, every DNS process already served the new serial.
        first_round = ended[0][2] or 0
        assert receiver.seen_on_notify[:first_round] == [{serial + 1}] * first_round
    finally:
        receiver.close()


def test_a_change_written_by_another_process_notifies(
    fodns_factory: StartFodns, tmp_path: Path, workers: int
) -> None:
    """NOTIFY follows the change log, not the API: a switch committed to the database by
    another process (here a second Store on the same file, as another `fodns` process
    would) moves the serial, so the secondaries are told, and only once every DNS
    process serves the new serial (a secondary that asks for the SOA sooner would see
    the old one and wait for its refresh timer)."""
    receiver = NotifyReceiver()
    folder = tmp_path / "serve"
    try:
        server = fodns_factory(
            TOKEN, directory=folder, workers=workers, **transfer_options(notify=receiver.port)
        )
        receiver.on_notify = lambda: serials_served(server)
        api = Api(server, TOKEN)
        api.ok("POST", "/v1/apps", {"name": "eu", "web_servers": ["192.0.2.10"]}, 201)
        api.ok("POST", "/v1/apps", {"name": "us", "web_servers": ["198.51.100.7"]}, 201)
        api.ok("POST", "/v1/groups", {"label": "shop", "primary": "eu", "backup": "us"}, 201)
        serial = soa_serial(server)
        assert wait_for(lambda: serial in answered_serials(server), timeout=30)
        told_before = len(receiver.received)

        zone = "fo.example.net"
        with Store(folder / "fodns.db", {zone: ZoneDefaults(serial=serial)}) as elsewhere:
            elsewhere.switch("elsewhere", "shop", "backup", zone)

        assert wait_for(lambda: serial + 1 in answered_serials(server), timeout=30)
        assert [s for _, s, _ in rounds(server)] == [serial, serial + 1]
        # When told, every DNS process already served the new serial.
        assert receiver.seen_on_notify[told_before:] == [{serial + 1}] * (
            len(receiver.received) - told_before
        )
    finally:
        receiver.close()


def test_a_refused_notify_is_logged_and_not_resent(fodns_factory: StartFodns) -> None:
    """An error answer (say NOTAUTH: the secondary has another key) will not change
    by resending; the operator is told instead."""
    receiver = NotifyReceiver(rcode=dns.rcode.NOTAUTH)
    try:
        server = start(fodns_factory, receiver)
        api = Api(server, TOKEN)
        api.ok("POST", "/v1/groups", {"label": "shop"}, 201)
        assert wait_for(lambda: server.log_events("notify_refused"))
        assert server.log_events("notify_refused")[0]["rcode"] == "NOTAUTH"
        # One more change: its round starts only once the first has ended.
        api.ok("POST", "/v1/groups", {"label": "shop2"}, 201)
        assert wait_for(lambda: len(server.log_events("notify_refused")) == 2, timeout=30)
        assert [how for how, _, _ in rounds(server)] == ["notify_refused"] * 2
        assert len(receiver.received) == 2, "a refused NOTIFY was sent again"
    finally:
        receiver.close()
