"""Response rate limiting under a spoofed-source flood: what the flood gets, what others get.

    .venv/bin/python benchmarks/rrl.py [--duration 10] [--limit 200] [--networks 4]
                                       [--addresses 16] [--times 10] [--workers 1]

A reflection attack sends queries whose source is the victim's address, many
times a second, for one large answer. Here the "victims" are `--networks` /24s
of loopback (127.0.20.0/24, 127.0.21.0/24, ...; Linux routes all of
127.0.0.0/8 to the loopback interface), each with `--addresses` client sockets
standing in for forged sources, and each /24 is sent `--times` times the limit,
every query the same (`fo.example.net TXT`, as an attacker picks one answer).
Meanwhile a well-behaved client in another /24 (127.0.30.1) asks varied
questions at a tenth of the limit and counts its answers.

Two runs, each `--duration` seconds: fodns as shipped except `rrl_exempt = []`
(loopback is exempt by default, and every source here is loopback), and the
same with `rrl_responses_per_second = 0` (off), for contrast. Per flood /24 it
reports full replies (must be at most the limit times the seconds the run
touched, times the workers the kernel spread it over), truncated "slipped"
replies, and the bytes reflected per byte sent; for the good client, how many
of its queries got their answer. Results go to benchmarks/out/rrl.json.

Everything binds 127.0.0.0/8 with ports the OS picks; the flood is paced and
stops by itself after `--duration` seconds (and at most MAX_QUERIES queries).
"""

from __future__ import annotations

import argparse
import math
import random
import re
import select
import socket
import struct
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import dns.message
from groups import ZONE, Server, write_results
from provenance import print_report, provenance
from run import fodns_revision, machine_info

FLOOD_QUESTION = ("fo.example.net", "TXT")
GOOD_NAMES = ("www", "mail", "status", "web.apps", "ns1", "ns2")
GOOD_SOURCE = "127.0.30.1"
FIRST_FLOOD_NETWORK = 20  # 127.0.20.0/24, 127.0.21.0/24, ...
MAX_QUERIES = 2_000_000
TICK = 0.002  # seconds between pacing steps
SETTLE = 1.0  # seconds to wait for the last replies


def write_config(directory: Path, workers: int, rrl: str) -> Path:
    config = directory / f"fodns-{'on' if rrl else 'off'}.toml"
    config.write_text(
        f'[dns]\nlisten = ["127.0.0.1:0"]\nworkers = {workers}\n{rrl}\n'
        f'[api]\nlisten = "127.0.0.1:0"\n[store]\npath = "{directory / "fodns.db"}"\n'
        f'[[zones]]\nname = "fo.example.net"\nfile = "{ZONE}"\n'
    )
    return config


def query_tail(name: str, rdtype: str) -> bytes:
    """A query's wire form without its 2-byte ID."""
    return bytes(dns.message.make_query(name, rdtype, use_edns=0, payload=1232).to_wire()[2:])


def client(address: str) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1024 * 1024)
    sock.bind((address, 0))
    sock.setblocking(False)
    return sock


class Tally:
    """What one client group sent and got back."""

    def __init__(self) -> None:
        self.sent = self.sent_bytes = 0
        self.full = self.slipped = self.reply_bytes = 0

    def received(self, reply: bytes) -> None:
        self.reply_bytes += len(reply)
        if len(reply) >= 4 and reply[2] & 0x02:  # TC
            self.slipped += 1
        else:
            self.full += 1

    def as_dict(self) -> dict[str, Any]:
        return {
            "queries_sent": self.sent,
            "full_replies": self.full,
            "slipped_replies": self.slipped,
            "reply_bytes_per_query_byte": round(self.reply_bytes / max(1, self.sent_bytes), 2),
        }


def flood(server: Server, args: argparse.Namespace) -> dict[str, Any]:
    """Send the paced flood and the good client's queries; count every reply."""
    target = ("127.0.0.1", server.dns_port)
    networks = [
        [client(f"127.0.{FIRST_FLOOD_NETWORK + n}.{host}") for host in range(1, args.addresses + 1)]
        for n in range(args.networks)
    ]
    good = client(GOOD_SOURCE)
    tallies = [Tally() for _ in networks]
    good_tally = Tally()
    owner: dict[int, Tally] = {good.fileno(): good_tally}
    for sockets, tally in zip(networks, tallies, strict=True):
        owner.update({sock.fileno(): tally for sock in sockets})
    by_fd = {sock.fileno(): sock for sockets in networks for sock in sockets}
    by_fd[good.fileno()] = good
    poller = select.poll()
    for fd in by_fd:
        poller.register(fd, select.POLLIN)

    flood_tail = query_tail(*FLOOD_QUESTION)
    good_tails = [query_tail(f"{name}.fo.example.net", "A") for name in GOOD_NAMES]
    flood_rate = args.limit * args.times  # per /24
    good_rate = max(1, args.limit // 10)
    rng = random.Random(20261122)
    good_asked: dict[int, int] = {}  # query ID -> index of the question asked
    good_answered = 0

    def drain(timeout_ms: int) -> None:
        nonlocal good_answered
        for fd, _ in poller.poll(timeout_ms):
            sock = by_fd[fd]
            while True:
                try:
                    reply = sock.recv(65535)
                except BlockingIOError:
                    break
                owner[fd].received(reply)
                if sock is good and len(reply) >= 8 and not reply[2] & 0x02:
                    qid = struct.unpack("!H", reply[:2])[0]
                    if good_asked.pop(qid, None) is not None and reply[6:8] != b"\0\0":
                        good_answered += 1

    started = time.monotonic()
    elapsed = 0.0
    total = 0
    metrics_during: dict[str, float] = {}
    while elapsed < args.duration and total < MAX_QUERIES:
        if not metrics_during and elapsed >= args.duration / 2:
            metrics_during = rrl_metrics(server)  # the gauge of limited /24s, mid-flood
        for sockets, tally in zip(networks, tallies, strict=True):
            due = min(int(flood_rate * elapsed), MAX_QUERIES)
            while tally.sent < due:
                message = struct.pack("!H", tally.sent & 0xFFFF) + flood_tail
                try:
                    sockets[tally.sent % len(sockets)].sendto(message, target)
                except BlockingIOError:
                    break  # our own send buffer is full: catch up on the next tick
                tally.sent += 1
                tally.sent_bytes += len(message)
                total += 1
        while good_tally.sent < int(good_rate * elapsed):
            qid = good_tally.sent & 0xFFFF
            tail = rng.choice(good_tails)
            good.sendto(struct.pack("!H", qid) + tail, target)
            good_asked[qid] = 1
            good_tally.sent += 1
            good_tally.sent_bytes += 2 + len(tail)
        drain(int(TICK * 1000))
        elapsed = time.monotonic() - started
    flood_seconds = elapsed
    settle_until = time.monotonic() + SETTLE
    while time.monotonic() < settle_until:
        drain(50)
    for sock in by_fd.values():
        sock.close()

    # The run touched at most this many seconds of the server's clock, each with
    # a fresh allowance; with several workers each counts its own share.
    windows = math.ceil(flood_seconds) + 1
    bound = args.limit * windows * args.workers
    return {
        "flood_seconds": round(flood_seconds, 2),
        "flood_rate_per_network": flood_rate,
        "flood_networks": [
            {"network": f"127.0.{FIRST_FLOOD_NETWORK + n}.0/24", **tally.as_dict()}
            for n, tally in enumerate(tallies)
        ],
        "full_replies_allowed_per_network": bound,
        "within_limit": all(tally.full <= bound for tally in tallies),
        "good_client": {
            "source": GOOD_SOURCE,
            "rate": good_rate,
            **good_tally.as_dict(),
            "answered": good_answered,
            "answer_rate": round(good_answered / max(1, good_tally.sent), 4),
        },
        "metrics_mid_flood": metrics_during,
        "metrics_after": rrl_metrics(server, wait=1.5),
    }


def rrl_metrics(server: Server, wait: float = 0.0) -> dict[str, float]:
    """The fodns_dns_rrl_* samples; `wait` first for workers' once-a-second reports."""
    url = f"http://127.0.0.1:{server.api_port}/metrics"
    time.sleep(wait)
    with urllib.request.urlopen(url, timeout=10) as response:
        text = response.read().decode()
    return {
        name: float(value)
        for name, value in re.findall(r"^(fodns_dns_rrl_\w+) (\S+)$", text, re.MULTILINE)
    }


def run(args: argparse.Namespace, rrl: str) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="fodns-rrl-") as temporary:
        server = Server(write_config(Path(temporary), args.workers, rrl))
        try:
            result = flood(server, args)
        finally:
            server.stop()
    return {"settings": rrl.strip().replace("\n", ", "), **result}


def print_summary(label: str, result: dict[str, Any], limited: bool) -> None:
    print(f"\n{label} ({result['settings']}), {result['flood_seconds']} s:")
    for network in result["flood_networks"]:
        print(
            f"  flood {network['network']}: sent {network['queries_sent']}, "
            f"full {network['full_replies']}, slipped {network['slipped_replies']}, "
            f"{network['reply_bytes_per_query_byte']} reply bytes per query byte"
        )
    good = result["good_client"]
    if limited:
        print(
            f"  full replies allowed per /24: {result['full_replies_allowed_per_network']}"
            f" -> {'within the limit' if result['within_limit'] else 'OVER THE LIMIT'}"
        )
    print(
        f"  good client {good['source']}: {good['answered']}/{good['queries_sent']} answered "
        f"({good['answer_rate']:.2%}), slipped {good['slipped_replies']}"
    )
    print(f"  metrics mid-flood: {result['metrics_mid_flood']}")
    print(f"  metrics after: {result['metrics_after']}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of flood per run")
    parser.add_argument("--limit", type=int, default=200, help="rrl_responses_per_second")
    parser.add_argument("--networks", type=int, default=4, help="flooded /24s")
    parser.add_argument("--addresses", type=int, default=16, help="forged sources per /24")
    parser.add_argument("--times", type=int, default=10, help="flood rate per /24, x limit")
    parser.add_argument("--workers", type=int, default=1, help="fodns DNS workers")
    args = parser.parse_args(argv)
    if not (0 < args.duration <= 120 and 1 <= args.networks <= 10 and 1 <= args.addresses <= 250):
        parser.error("--duration 0-120 s, --networks 1-10, --addresses 1-250")
    limited = f"rrl_exempt = []\nrrl_responses_per_second = {args.limit}\n"
    record = provenance(
        "the same flood against a fresh fodns with RRL off (rrl_responses_per_second = 0), "
        "in this same run ('unlimited')",
        argv,
        __file__,
    )
    print_report(record)
    results = {
        "provenance": record,
        "command_line": sys.argv,
        "fodns_revision": fodns_revision(),
        "machine": machine_info(),
        "settings": vars(args),
        "limited": run(args, limited),
        "unlimited": run(args, "rrl_responses_per_second = 0\n"),
    }
    write_results("rrl", results)
    print_summary("RRL on", results["limited"], limited=True)
    print_summary("RRL off", results["unlimited"], limited=False)
    return 0 if results["limited"]["within_limit"] else 1


if __name__ == "__main__":
    sys.exit(main())
