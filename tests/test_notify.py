"""NOTIFY (RFC 1996) to secondaries: sent after each change, signed, resent until
answered, and coalesced under a burst. The secondary is a real UDP socket that checks
every message with dnspython and the shared TSIG key."""

from __future__ import annotations

import signal
import socket
import threading
import time
from pathlib import Path

import dns.flags
import dns.message
import dns.opcode
import dns.rcode
import dns.rdatatype
import dns.tsigkeyring
import pytest

from tests.support import (
    EXAMPLE_ZONE,
    FodnsProcess,
    api_request,
    start_fodns,
    wait_for,
    write_config,
)

SECRET = "c2VjcmV0LXNoYXJlZC13aXRoLXRoZS1zZWNvbmRhcnk="
KEYRING = dns.tsigkeyring.from_text({"xfr.": ("hmac-sha256", SECRET)})
TOKEN = "notify-test-token"


class Secondary:
    """Receives NOTIFYs on 127.0.0.1, verifies their TSIG, and answers (or not)."""

    def __init__(
        self, ignore_first: int = 0, answer_after: float = 0.0, rcode: int = dns.rcode.NOERROR
    ) -> None:
        self.rcode = rcode
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.ignore_first = ignore_first
        self.answer_after = answer_after
        self.received: list[tuple[float, dns.message.Message]] = []
        self.running = True
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self) -> None:
        deadline = time.monotonic() + 60  # bounded
        while self.running and time.monotonic() < deadline:
            try:
                data, peer = self.sock.recvfrom(4096)
            except TimeoutError:
                continue
            message = dns.message.from_wire(data, keyring=KEYRING)  # raises on a bad signature
            self.received.append((time.monotonic(), message))
            if len(self.received) <= self.ignore_first:
                continue
            time.sleep(self.answer_after)
            reply = dns.message.make_response(message)
            reply.set_rcode(self.rcode)
            self.sock.sendto(reply.to_wire(), peer)

    def close(self) -> None:
        self.running = False
        self.thread.join(5)
        self.sock.close()


def start(
    tmp_path: Path, secondary: Secondary, zone_file: Path = EXAMPLE_ZONE, workers: int = 1
) -> FodnsProcess:
    config = write_config(
        tmp_path,
        [("fo.example.net", zone_file)],
        dns_extra=f"workers = {workers}\n",
        zone_extra=(
            f'notify = ["127.0.0.1:{secondary.port}"]\n'
            'allow_transfer = [{ address = "127.0.0.1/32", key = "xfr" }]\n'
        ),
        extra=f'[tsig.xfr]\nalgorithm = "hmac-sha256"\nsecret = "{SECRET}"\n',
    )
    return start_fodns("--config", str(config), env={"FODNS_ADMIN_TOKEN": TOKEN})


def post(server: FodnsProcess, path: str, body: object) -> None:
    status, payload = api_request(server, "POST", path, body, TOKEN)
    assert status in (200, 201), (path, status, payload)


def test_a_change_sends_a_signed_notify(tmp_path: Path) -> None:
    secondary = Secondary()
    server = start(tmp_path, secondary)
    try:
        post(server, "/v1/groups", {"label": "shop"})
        assert wait_for(lambda: secondary.received)
        _, notify = secondary.received[0]
        assert notify.opcode() == dns.opcode.NOTIFY
        assert notify.flags & dns.flags.AA  # RFC 1996 §3.7
        assert notify.question[0].name.to_text() == "fo.example.net."
        assert notify.question[0].rdtype == dns.rdatatype.SOA
        assert notify.had_tsig and notify.keyname.to_text() == "xfr."
        assert wait_for(lambda: server.log_events("notify_answered"))
    finally:
        assert server.stop() == 0
        secondary.close()


def test_an_unanswered_notify_is_sent_again(tmp_path: Path) -> None:
    secondary = Secondary(ignore_first=1)
    server = start(tmp_path, secondary)
    try:
        post(server, "/v1/groups", {"label": "shop"})
        assert wait_for(lambda: len(secondary.received) >= 2)
        (first_at, first), (second_at, second) = secondary.received[:2]
        assert first.question == second.question
        assert 0.3 < second_at - first_at < 5.0
        assert wait_for(lambda: server.log_events("notify_answered"))
    finally:
        assert server.stop() == 0
        secondary.close()


def test_a_burst_of_switches_is_coalesced(tmp_path: Path) -> None:
    secondary = Secondary(answer_after=0.3)  # a slow secondary: changes pile up meanwhile
    server = start(tmp_path, secondary)
    try:
        post(server, "/v1/apps", {"name": "eu", "web_servers": ["192.0.2.10"]})
        post(server, "/v1/apps", {"name": "us", "web_servers": ["198.51.100.7"]})
        post(server, "/v1/groups", {"label": "shop", "primary": "eu", "backup": "us"})
        for count in range(20):
            post(
                server, "/v1/groups/shop/switch", {"to": "backup" if count % 2 == 0 else "primary"}
            )
        time.sleep(1.5)
        assert 1 <= len(secondary.received) < 10, len(secondary.received)
    finally:
        assert server.stop() == 0
        secondary.close()


@pytest.mark.parametrize("workers", [1, 2])
def test_a_reload_that_moves_the_serial_notifies(tmp_path: Path, workers: int) -> None:
    """SIGHUP with an edited zone file: the serial moves, so the secondaries are told;
    with workers, only once every worker serves the new serial."""
    zone_file = tmp_path / "fo.example.net.zone"
    zone_file.write_text(EXAMPLE_ZONE.read_text())
    secondary = Secondary()
    server = start(tmp_path, secondary, zone_file, workers)
    try:
        serial = soa_serial(server)
        server.process.send_signal(signal.SIGHUP)  # unchanged: no NOTIFY
        zone_file.write_text(zone_file.read_text() + 'edited 300 IN TXT "yes"\n')
        server.process.send_signal(signal.SIGHUP)
        assert wait_for(lambda: secondary.received)
        time.sleep(0.5)  # room for a wrong extra NOTIFY to arrive
        assert len(secondary.received) == 1
        # When told, every DNS process already serves the new serial.
        assert all(soa_serial(server) == serial + 1 for _ in range(20))
    finally:
        assert server.stop() == 0
        secondary.close()


def soa_serial(server: FodnsProcess) -> int:
    # A fresh socket each time: with workers, SO_REUSEPORT spreads them over processes.
    return int(server.udp(dns.message.make_query("fo.example.net", "SOA")).answer[0][0].serial)


def test_a_refused_notify_is_logged_and_not_resent(tmp_path: Path) -> None:
    """An error answer (say NOTAUTH: the secondary has another key) will not change
    by resending; the operator is told instead."""
    secondary = Secondary(rcode=dns.rcode.NOTAUTH)
    server = start(tmp_path, secondary)
    try:
        post(server, "/v1/groups", {"label": "shop"})
        assert wait_for(lambda: server.log_events("notify_refused"))
        assert server.log_events("notify_refused")[0]["rcode"] == "NOTAUTH"
        time.sleep(1.5)  # past the first resend's wait
        assert len(secondary.received) == 1
        assert not server.log_events("notify_answered")
    finally:
        assert server.stop() == 0
        secondary.close()
