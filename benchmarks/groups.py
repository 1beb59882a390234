"""Failover groups at scale: start-up with many groups, switch-to-served latency, switch rate.

    .venv/bin/python benchmarks/groups.py [--groups 100000] [--apps 10000] [--switches 1000]
                                          [--against REV] [--rounds 1] [--out PATH]

1. Scale: a store with N apps and M groups (written straight into SQLite, as the
   set-up is not what is measured), then `fodns serve` with 1 and 2 workers:
   seconds until DNS is served, and resident memory per DNS process.
   With 1 worker (DNS and the API on one event loop), also: how long the list
   calls take (the whole lists, which the dashboard reads after every change, and
   pages of 100 with and without a search) and the worst DNS reply time while
   they run, from a prober sending a query every 5 ms.
2. Switches: `fodns serve` with 2 workers, 20 groups; S switches through the API
   one after another, over one kept-alive connection (as an SDK or Terraform
   calls; a 202 counts as not served). For each: the API latency (request to 200, which fodns
   sends once every worker serves the change) and the switch-to-served latency
   (request until 16 client sockets with different source ports, which
   SO_REUSEPORT spreads over both workers, all get the new answer; the 16 ask
   at once, so the check adds about one round trip).
   Then the rate of switches per second.

With `--against REV`, the same measurements of commit REV (exported with `git archive`
into a temporary directory and run from there) in the same invocation, on the same
data, taking turns with this tree `--rounds` times; the output gives both and the
ratios this tree / REV. Numbers from separate invocations are not compared.

Everything binds 127.0.0.1 on ports the OS picks; every loop is bounded.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing
import os
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from http.client import HTTPConnection
from pathlib import Path
from typing import Any

import dns.message
import dns.query
from provenance import print_report, provenance

REPOSITORY = Path(__file__).resolve().parent.parent
ZONE = REPOSITORY / "zones" / "fo.example.net.zone"
FODNS = REPOSITORY / ".venv" / "bin" / "fodns"
TOKEN = "benchmark-token-5d3e"
NOW = "2026-11-22T00:00:00.000Z"


def write_config(directory: Path, workers: int) -> Path:
    config = directory / f"fodns-{workers}.toml"
    config.write_text(
        f'[dns]\nlisten = ["127.0.0.1:0"]\nworkers = {workers}\n'
        f'[api]\nlisten = "127.0.0.1:0"\n[store]\npath = "{directory / "fodns.db"}"\n'
        f'[[zones]]\nname = "fo.example.net"\nfile = "{ZONE}"\n'
        # AXFR from loopback, unsigned: the transfer measured while queries are answered.
        'allow_transfer = [{ address = "127.0.0.1/32" }]\n'
    )
    return config


def code_environment(code: Path) -> dict[str, str]:
    """The environment that makes `python -m fodns` run the fodns of `code` (a checkout
    or an exported commit): PYTHONPATH comes before the editable install's path."""
    return {**os.environ, "PYTHONPATH": str(code), "PYTHONUNBUFFERED": "1"}


CREATE_STORE = (
    "import sys\n"
    "from pathlib import Path\n"
    "from fodns.store import Store, ZoneDefaults\n"
    "Store(Path(sys.argv[1]), {'fo.example.net': ZoneDefaults(serial=1)}).close()\n"
)


def fill_store(directory: Path, apps: int, groups: int, code: Path = REPOSITORY) -> None:
    """Apps (a tenth behind a load-balancer hostname, the rest two web servers) and
    groups (primary and backup apps, a third switched to backup), in bulk. The schema
    is made by the fodns of `code`, the one that will serve the store."""
    subprocess.run(
        [sys.executable, "-c", CREATE_STORE, str(directory / "fodns.db")],
        cwd=code,
        env=code_environment(code),
        check=True,
        timeout=120,
    )
    with sqlite3.connect(directory / "fodns.db") as db:
        db.executemany(
            "INSERT INTO apps (name, load_balancer, web_servers, created_at, updated_at) "
            "VALUES (?, ?, ?, ?, ?)",
            [
                (
                    f"app-{i}",
                    json.dumps([f"lb{i}.example.com."] if i % 10 == 0 else []),
                    json.dumps(
                        []
                        if i % 10 == 0
                        else [f"10.{i >> 8 & 255}.{i & 255}.1", f"10.{i >> 8 & 255}.{i & 255}.2"]
                    ),
                    NOW,
                    NOW,
                )
                for i in range(apps)
            ],
        )
        labels = [
            f"{i // 1_000_000:03d}-{i // 1000 % 1000:03d}-{i % 1000:03d}" for i in range(groups)
        ]
        db.executemany(
            "INSERT INTO labels VALUES ('fo.example.net', ?, ?)", [(label, NOW) for label in labels]
        )
        db.executemany(
            "INSERT INTO groups (zone, label, primary_app_id, backup_app_id, active, ttl, "
            "created_at, updated_at) VALUES ('fo.example.net', ?, ?, ?, ?, 30, ?, ?)",
            [
                (
                    label,
                    1 + i % apps,
                    1 + (i + 1) % apps,
                    "backup" if i % 3 == 0 else "primary",
                    NOW,
                    NOW,
                )
                for i, label in enumerate(labels)
            ],
        )


class StartFailed(RuntimeError):
    """fodns exited while starting: why, after how long, and its peak memory until then."""

    def __init__(self, message: str, seconds: float, peak_mb: float) -> None:
        super().__init__(message)
        self.seconds = seconds
        self.peak_mb = peak_mb


class Server:
    """`fodns serve` as a child process; reads its dns_listening/api_listening events.
    By default this checkout's fodns; with `code`, the fodns in that directory."""

    def __init__(self, config: Path, code: Path | None = None) -> None:
        self.started = time.monotonic()
        # The log goes to a file: a pipe nobody reads would fill and stall the server.
        self.log_path = config.with_suffix(".log")
        self.log = self.log_path.open("w")
        command = [str(FODNS)] if code is None else [sys.executable, "-m", "fodns"]
        environment = os.environ if code is None else code_environment(code)
        self.process = subprocess.Popen(
            [*command, "serve", "--config", str(config)],
            cwd=code,
            stdout=subprocess.DEVNULL,
            stderr=self.log,
            text=True,
            env={**environment, "FODNS_ADMIN_TOKEN": TOKEN, "PYTHONUNBUFFERED": "1"},
        )
        self.dns_port = self.api_port = 0
        # The most memory all its processes held at once while it started (sampled).
        self.peak_resident_mb_total = 0.0
        next_sample = 0.0
        deadline = time.monotonic() + 120
        while (not self.dns_port or not self.api_port) and time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise StartFailed(
                    f"fodns exited while starting: {self.log_path.read_text()[-500:]}",
                    time.monotonic() - self.started,
                    self.peak_resident_mb_total,
                )
            if time.monotonic() >= next_sample:
                next_sample = time.monotonic() + 0.1
                self.peak_resident_mb_total = max(
                    self.peak_resident_mb_total, self.resident_mb_total()
                )
            for line in self.log_path.read_text().splitlines():
                try:
                    event = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if event.get("event") == "dns_listening" and not self.dns_port:
                    self.dns_port = int(event["listen"][0].rpartition(":")[2])
                    self.ready_after = time.monotonic() - self.started
                elif event.get("event") == "api_listening":
                    self.api_port = int(event["listen"].rpartition(":")[2])
            time.sleep(0.02)

    def resident_mb(self) -> list[float]:
        """Resident memory of each process serving DNS (the workers, or the one process)."""
        pids = subprocess.run(
            ["pgrep", "-P", str(self.process.pid)], capture_output=True, text=True
        ).stdout.split() or [str(self.process.pid)]
        sizes = []
        for pid in pids:
            if b"resource_tracker" in Path(f"/proc/{pid}/cmdline").read_bytes():
                continue  # multiprocessing's helper, not a DNS process
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    sizes.append(int(line.split()[1]) / 1024)
        return sizes

    def resident_mb_total(self) -> float:
        """Resident memory of every process of this fodns: the main process, the DNS
        workers and multiprocessing's helper, as the machine must hold them."""
        children = subprocess.run(
            ["pgrep", "-P", str(self.process.pid)], capture_output=True, text=True
        ).stdout.split()
        pids = [str(self.process.pid), *children]
        total = 0.0
        for pid in pids:
            with contextlib.suppress(OSError):  # a process that has just ended
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1]) / 1024
        return total

    def api(self, method: str, path: str, body: object = None) -> object:
        return json.loads(self.api_bytes(method, path, body) or b"null")

    def api_bytes(self, method: str, path: str, body: object = None) -> bytes:
        """The reply body as it came, not parsed."""
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.api_port}{path}",
            method=method,
            data=json.dumps(body).encode() if body is not None else None,
            headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            return bytes(response.read())

    def session(self) -> ApiSession:
        """One kept-alive connection to the API, as a client that makes many calls
        holds (an SDK, Terraform): what a switch costs without a TCP handshake."""
        return ApiSession(self.api_port)

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.close()


class ApiSession:
    """API calls over one kept-alive HTTP/1.1 connection."""

    def __init__(self, port: int) -> None:
        self.connection = HTTPConnection("127.0.0.1", port, timeout=30)

    def post(self, path: str, body: object) -> int:
        self.connection.request(
            "POST",
            path,
            json.dumps(body),
            {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
        )
        response = self.connection.getresponse()
        response.read()
        return response.status

    def close(self) -> None:
        self.connection.close()


def measure_scale(
    apps: int,
    groups: int,
    code: Path = REPOSITORY,
    workers_counts: tuple[int, ...] = (1, 2),
    switches_at_scale: int = 0,
    axfr: bool = False,
) -> list[dict[str, object]]:
    rows = []
    with tempfile.TemporaryDirectory(prefix="fodns-scale-") as temporary:
        directory = Path(temporary)
        fill_store(directory, apps, groups, code)
        for workers in workers_counts:
            try:
                server = Server(write_config(directory, workers), code)
            except StartFailed as failed:
                rows.append(
                    {
                        "workers": workers,
                        "groups": groups,
                        "apps": apps,
                        "failed_to_start": str(failed),
                        "seconds_until_it_gave_up": round(failed.seconds, 2),
                        "peak_resident_mb_total": round(failed.peak_mb),
                    }
                )
                continue
            try:
                reply = dns.query.udp(
                    dns.message.make_query("000-000-001.fo.example.net", "A"),
                    "127.0.0.1",
                    port=server.dns_port,
                    timeout=5,
                )
                assert reply.answer, "a group did not answer"
                row: dict[str, object] = {
                    "workers": workers,
                    "groups": groups,
                    "apps": apps,
                    "seconds_to_serving": round(server.ready_after, 2),
                    "resident_mb_per_dns_process": [round(m) for m in server.resident_mb()],
                    "resident_mb_total": round(server.resident_mb_total()),
                    "peak_resident_mb_total": round(server.peak_resident_mb_total),
                }
                if workers == 1:
                    row.update(dns_during_lists(server, LIST_PATHS))
                if workers > 1 and axfr:
                    row.update(dns_during_axfr(server))
                if workers > 1 and switches_at_scale:
                    targets = scale_switch_targets(groups, apps)
                    row["switches_at_scale"] = switch_loop(server, targets, switches_at_scale)
                rows.append(row)
            finally:
                server.stop()
    return rows


def scale_switch_targets(groups: int, apps: int, count: int = 20) -> list[SwitchTarget]:
    """Groups of fill_store to switch back and forth: spread over the whole store, each
    with its primary side active and web servers on both sides (fill_store gives group
    i the apps i and i + 1, app j the servers 10.(j >> 8).(j & 255).1 and .2 unless j
    is a multiple of ten, and a third of the groups, i a multiple of three, backup
    active)."""
    chosen: list[SwitchTarget] = []
    step = max(1, groups // count)
    for start in range(0, groups, step):
        i = next(
            (k for k in range(start, min(groups, start + 30)) if k % 3 and k % 10 not in (0, 9)),
            None,
        )
        if i is None:
            continue
        label = f"{i // 1_000_000:03d}-{i // 1000 % 1000:03d}-{i % 1000:03d}"
        primary, backup = i % apps, (i + 1) % apps
        chosen.append((label, app_address(primary), app_address(backup)))
    return chosen[:count]


def app_address(app: int) -> str:
    return f"10.{app >> 8 & 255}.{app & 255}.1"


def dns_during_axfr(server: Server, seconds_before: float = 3.0) -> dict[str, object]:
    """An AXFR of the zone over TCP while a prober process queries over UDP, one query
    after another from 16 sockets in turn (so both workers are asked): the probes
    answered per second before and during the transfer, and the worst reply time
    during it. The transfer is read and its records counted without being parsed,
    so the reader takes little of the CPU the server needs."""
    context = multiprocessing.get_context("spawn")
    stop, ready, results = context.Event(), context.Event(), context.Queue()
    prober = context.Process(
        target=probe_dns_spread, args=(server.dns_port, stop, ready, 600.0, results)
    )
    prober.start()
    try:
        if not ready.wait(60):
            raise RuntimeError("the DNS prober got no reply within 60 s")
        time.sleep(seconds_before)
        started = time.monotonic()
        records, messages = axfr_record_count(server.dns_port, "fo.example.net")
        finished = time.monotonic()
    finally:
        stop.set()
        replies = results.get(timeout=PROBE_TIMEOUT + 60)
        prober.join(10)
    before = [ms for at, ms in replies if at < started]
    during = [ms for at, ms in replies if started <= at <= finished]
    window_before = min(seconds_before, started - min(at for at, _ in replies))
    return {
        "axfr_seconds": round(finished - started, 2),
        "axfr_records": records,
        "axfr_messages": messages,
        "dns_answered_per_second_before_axfr": round(len(before) / window_before),
        "dns_answered_per_second_during_axfr": round(len(during) / (finished - started)),
        "dns_ms_during_axfr_p99": round(percentile(during, 0.99), 1) if during else None,
        "dns_ms_during_axfr_worst": round(max(during), 1) if during else None,
        "dns_probes_unanswered_during_axfr": sum(ms >= PROBE_TIMEOUT * 1000 for ms in during),
    }


def axfr_record_count(port: int, zone: str, timeout: float = 300.0) -> tuple[int, int]:
    """Records and messages of an AXFR of `zone`, read until the closing SOA (RFC 5936
    §2.2: the first and last record are the SOA), each record stepped over by its
    RDLENGTH rather than parsed."""
    query = dns.message.make_query(zone, "AXFR").to_wire()
    deadline = time.monotonic() + timeout
    records = messages = soas = 0
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(len(query).to_bytes(2, "big") + query)
        stream = sock.makefile("rb")
        while soas < 2 and time.monotonic() < deadline:
            length = int.from_bytes(stream.read(2), "big")
            message = stream.read(length)
            if len(message) < 12 or message[3] & 0x0F:
                raise RuntimeError(f"AXFR failed: rcode {message[3] & 0x0F if message else '-'}")
            count = int.from_bytes(message[6:8], "big")
            offset = skip_name(message, 12) + 4  # the question: name, type, class
            for _ in range(count):
                offset = skip_name(message, offset)
                if int.from_bytes(message[offset : offset + 2], "big") == SOA_TYPE:
                    soas += 1
                offset += 10 + int.from_bytes(message[offset + 8 : offset + 10], "big")
            records += count
            messages += 1
    return records, messages


SOA_TYPE = 6


def skip_name(message: bytes, offset: int) -> int:
    """The offset after the (possibly compressed) name at `offset`."""
    while True:
        length = message[offset]
        if length == 0:
            return offset + 1
        if length & 0xC0:
            return offset + 2
        offset += length + 1


def probe_dns_spread(port: int, stop: Any, ready: Any, seconds: float, results: Any) -> None:
    """Query a group name over UDP, one query at a time, from 16 sockets in turn (the
    kernel spreads them over the workers), until `stop` is set or `seconds` pass;
    send back (time sent, reply ms) of each, a probe unanswered within PROBE_TIMEOUT
    counting as that."""
    deadline = time.monotonic() + seconds
    replies: list[tuple[float, float]] = []
    sockets = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(16)]
    try:
        count = 0
        while not stop.is_set() and time.monotonic() < deadline:
            sock = sockets[count % len(sockets)]
            query = dns.message.make_query(f"000-{count % 1000:03d}-001.fo.example.net", "A")
            sent = time.monotonic()
            sock.sendto(query.to_wire(), ("127.0.0.1", port))
            if answered_within(sock, query.id, sent + PROBE_TIMEOUT):
                replies.append((sent, (time.monotonic() - sent) * 1000))
                ready.set()
            else:
                replies.append((sent, PROBE_TIMEOUT * 1000))
            count += 1
    finally:
        for sock in sockets:
            sock.close()
    results.put(replies)


def probe_dns(port: int, stop: Any, ready: Any, seconds: float, results: Any) -> None:
    """Query fodns every 5 ms until `stop` is set (or `seconds` pass), setting `ready`
    at the first reply; send back the reply times in ms and how many got no reply
    within PROBE_TIMEOUT (counted at that time: the least they took). Runs in a
    process of its own: a thread beside the HTTP client would share its GIL, and
    reading 25 MB there delayed the prober by 100 ms."""
    deadline = time.monotonic() + seconds
    replies_ms: list[float] = []
    timeouts = 0
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        while not stop.is_set() and time.monotonic() < deadline:
            query = dns.message.make_query("www.fo.example.net", "A")  # a new ID each
            sent = time.monotonic()
            sock.sendto(query.to_wire(), ("127.0.0.1", port))
            if answered_within(sock, query.id, sent + PROBE_TIMEOUT):
                replies_ms.append((time.monotonic() - sent) * 1000)
                ready.set()
            else:
                timeouts += 1
                replies_ms.append(PROBE_TIMEOUT * 1000)
            time.sleep(0.005)
    results.put((replies_ms, timeouts))


PROBE_TIMEOUT = 5.0
# The whole lists (what the dashboard reads today), then pages: the first 100 groups
# and apps, a search that finds a few groups (app-77's and app-770's...) and one that
# finds none, so steps over every group (a commit without pages lists them all).
LIST_PATHS = [
    "/v1/groups",
    "/v1/apps",
    "/v1/zones",
    "/v1/groups?limit=100",
    "/v1/apps?limit=100",
    "/v1/groups?q=app-77&limit=100",
    "/v1/groups?q=nowhere&limit=100",
]


def answered_within(sock: socket.socket, query_id: int, deadline: float) -> bool:
    """Whether the reply to `query_id` came before `deadline`; a late reply to an
    earlier probe is skipped, not taken for this one."""
    while (left := deadline - time.monotonic()) > 0:
        sock.settimeout(left)
        try:
            reply = sock.recv(4096)
        except TimeoutError:
            return False
        if len(reply) >= 2 and int.from_bytes(reply[:2], "big") == query_id:
            return True
    return False


def dns_during_lists(server: Server, paths: list[str], rounds: int = 3) -> dict[str, object]:
    """Each list call `rounds` times, while a prober process queries DNS every 5 ms
    (for at most 120 s): the calls' durations and the DNS reply times meanwhile."""
    context = multiprocessing.get_context("spawn")
    stop, ready, results = context.Event(), context.Event(), context.Queue()
    prober = context.Process(target=probe_dns, args=(server.dns_port, stop, ready, 120.0, results))
    prober.start()
    seconds: dict[str, float] = {}
    try:
        # The prober is up and has had a reply (starting a process takes a while on a
        # busy machine: a fixed pause here once left it with no sample at all).
        if not ready.wait(60):
            raise RuntimeError("the DNS prober got no reply within 60 s")
        for path in paths:
            times = []
            for _ in range(rounds):
                start = time.monotonic()
                server.api_bytes("GET", path)  # read, not parsed: the time is fodns's
                times.append(time.monotonic() - start)
            seconds[path] = round(statistics.median(times), 3)  # pages take milliseconds
    finally:
        stop.set()
        replies_ms, timeouts = results.get(timeout=PROBE_TIMEOUT + 30)
        prober.join(10)
    return {
        "list_seconds_median": seconds,
        "dns_ms_during_lists_p99": round(percentile(replies_ms, 0.99), 1),
        "dns_ms_during_lists_worst": round(max(replies_ms), 1),
        "dns_probes_during_lists": len(replies_ms),
        "dns_probes_unanswered_within_5s": timeouts,
    }


def all_sockets_see(
    sockets: list[socket.socket], port: int, fqdn: str, expected: str, deadline: float
) -> bool:
    """Query from every socket until each one gets `expected` (or the deadline passes).

    Each round sends from every socket still waiting first and then reads the
    replies, so checking 16 sockets costs about one round trip, not 16 in a row:
    the figure is fodns's latency, not the checker's.
    """
    pending = list(sockets)
    while pending and time.monotonic() < deadline:
        sent = []
        for sock in pending:
            query = dns.message.make_query(fqdn, "A")
            sock.sendto(query.to_wire(), ("127.0.0.1", port))
            sent.append((sock, query.id))
        still = []
        for sock, query_id in sent:
            addresses = reply_addresses(sock, query_id, min(deadline, time.monotonic() + 0.2))
            if addresses is None or expected not in addresses:
                still.append(sock)
        pending = still
    return not pending


def reply_addresses(sock: socket.socket, query_id: int, deadline: float) -> set[str] | None:
    """The answer's data of the reply to `query_id`, or None if none came by `deadline`;
    a late reply to an earlier query from the same socket is skipped."""
    while (left := deadline - time.monotonic()) > 0:
        sock.settimeout(left)
        try:
            reply = dns.message.from_wire(sock.recv(4096))
        except TimeoutError:
            return None
        except dns.exception.DNSException:
            continue
        if reply.id == query_id:
            return {rdata.to_text() for rrset in reply.answer for rdata in rrset}
    return None


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


# A group to switch: label, its primary's address, its backup's address (primary active).
SwitchTarget = tuple[str, str, str]


def measure_switches(switches: int, code: Path = REPOSITORY) -> dict[str, object]:
    with tempfile.TemporaryDirectory(prefix="fodns-switch-") as temporary:
        directory = Path(temporary)
        server = Server(write_config(directory, 2), code)
        try:
            server.api("POST", "/v1/apps", {"name": "eu", "web_servers": ["192.0.2.10"]})
            server.api("POST", "/v1/apps", {"name": "us", "web_servers": ["198.51.100.7"]})
            targets: list[SwitchTarget] = [
                (
                    server.api("POST", "/v1/groups", {"primary": "eu", "backup": "us"})["label"],  # type: ignore[index]
                    "192.0.2.10",
                    "198.51.100.7",
                )
                for _ in range(20)
            ]
            return switch_loop(server, targets, switches)
        finally:
            server.stop()


def switch_loop(server: Server, targets: list[SwitchTarget], switches: int) -> dict[str, object]:
    """`switches` switches through the API one after another, over the targets in turn,
    each checked from 16 sockets (see all_sockets_see); then the switch rate alone."""
    sockets = []
    session = server.session()
    try:
        for _ in range(16):
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sock.settimeout(0.2)
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        api_ms, served_ms, missed = [], [], 0
        began = time.monotonic()
        for count in range(switches):
            label, primary, backup = targets[count % len(targets)]
            side, address = (
                ("backup", backup) if (count // len(targets)) % 2 == 0 else ("primary", primary)
            )
            start = time.monotonic()
            status = session.post(f"/v1/groups/{label}/switch", {"to": side})
            acknowledged = time.monotonic()
            if status != 200:  # 202: durable but not served by every worker in time
                missed += 1
            if not all_sockets_see(
                sockets, server.dns_port, f"{label}.fo.example.net", address, acknowledged + 2.0
            ):
                missed += 1
            api_ms.append((acknowledged - start) * 1000)
            served_ms.append((time.monotonic() - start) * 1000)
        elapsed = time.monotonic() - began
        # Switch rate alone: the API one request after another, no DNS checks between.
        # An even number, so every group ends on the side it started on.
        rate_switches = switches - switches % 2
        rate_began = time.monotonic()
        for count in range(rate_switches):
            side = "backup" if count % 2 == 0 else "primary"
            session.post(f"/v1/groups/{targets[0][0]}/switch", {"to": side})
        rate = rate_switches / (time.monotonic() - rate_began) if rate_switches else 0.0
    finally:
        session.close()
        for sock in sockets:
            sock.close()
    return {
        "switches": switches,
        "workers": 2,
        "checked_sockets": 16,
        "api_ms_p50": round(statistics.median(api_ms), 2),
        "api_ms_p99": round(percentile(api_ms, 0.99), 2),
        "switch_to_served_ms_p50": round(statistics.median(served_ms), 2),
        "switch_to_served_ms_p99": round(percentile(served_ms, 0.99), 2),
        "not_served_within_2s": missed,
        "switches_per_second_sequential": round(rate, 1),
        "run_seconds": round(elapsed, 1),
    }


def export_commit(revision: str, directory: Path) -> dict[str, str]:
    """Commit `revision`'s files into `directory` (git archive: no worktree to register
    or clean up); its full hash and subject."""
    commit = subprocess.run(
        ["git", "-C", str(REPOSITORY), "rev-parse", "--verify", f"{revision}^{{commit}}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    archive = subprocess.run(
        ["git", "-C", str(REPOSITORY), "archive", commit], capture_output=True, check=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(directory)], input=archive, check=True)
    subject = subprocess.run(
        ["git", "-C", str(REPOSITORY), "log", "-1", "--format=%s", commit],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    return {"commit": commit, "subject": subject}


def measure(args: argparse.Namespace, code: Path) -> dict[str, object]:
    results: dict[str, object] = {
        "scale": measure_scale(
            args.apps,
            args.groups,
            code,
            tuple(args.workers),
            args.switches_at_scale,
            args.axfr,
        )
    }
    if args.switches:
        results["switches"] = measure_switches(args.switches, code)
    return results


def numbers(results: dict[str, Any]) -> dict[str, float]:
    """Every number of one measurement, by a flat name ("scale.workers1.x", "switches.y")."""
    flat: dict[str, float] = {}
    for row in results["scale"]:
        for key, value in row.items():
            name = f"scale.workers{row['workers']}.{key}"
            if isinstance(value, dict):
                flat.update(
                    {
                        f"{name}.{k}": float(v)
                        for k, v in value.items()
                        if isinstance(v, (int, float)) and k not in ("switches", "workers")
                    }
                )
            elif isinstance(value, list):
                flat.update({f"{name}.{i}": float(v) for i, v in enumerate(value)})
            elif isinstance(value, (int, float)) and key not in ("workers", "groups", "apps"):
                flat[name] = float(value)
    for key, value in results.get("switches", {}).items():
        if isinstance(value, (int, float)) and key not in ("switches", "workers"):
            flat[f"switches.{key}"] = float(value)
    return flat


def compare(
    this_tree: list[dict[str, Any]], against: list[dict[str, Any]]
) -> dict[str, dict[str, float | None]]:
    """Per number: the median over rounds for each side, and this tree / REV."""
    table: dict[str, dict[str, float | None]] = {}
    ours = [numbers(run) for run in this_tree]
    theirs = [numbers(run) for run in against]
    for name in ours[0]:
        if not all(name in run for run in theirs):
            continue
        mine = statistics.median(run[name] for run in ours)
        other = statistics.median(run[name] for run in theirs)
        table[name] = {
            "against": round(other, 3),
            "this_tree": round(mine, 3),
            "ratio": round(mine / other, 3) if other else None,
        }
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--groups", type=int, default=100_000)
    parser.add_argument("--apps", type=int, default=10_000)
    parser.add_argument("--switches", type=int, default=1000, help="0: no switch measurement")
    parser.add_argument(
        "--workers",
        type=int,
        nargs="+",
        default=[1, 2],
        help="the worker counts whose start-up is measured (the lists only with 1)",
    )
    parser.add_argument(
        "--switches-at-scale",
        type=int,
        default=0,
        metavar="S",
        help="also S switches of the big store's groups, with 2 workers or more",
    )
    parser.add_argument(
        "--axfr",
        action="store_true",
        help="also an AXFR of the big zone while queries are answered (2 workers or more)",
    )
    parser.add_argument(
        "--against",
        metavar="REV",
        help="also measure commit REV in this run, taking turns with this tree",
    )
    parser.add_argument("--rounds", type=int, default=1, help="turns each (with --against)")
    parser.add_argument("--out", type=Path, help="the JSON file (benchmarks/out/groups.json)")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(REPOSITORY))
    with tempfile.TemporaryDirectory(prefix="fodns-against-") as exported:
        reference: str | dict[str, Any] = (
            "none: absolute numbers of this tree alone (give --against REV to measure "
            "another commit in the same run)"
        )
        against_code = None
        if args.against:
            against_code = Path(exported)
            other = export_commit(args.against, against_code)
            reference = {
                "against": f"{other['commit']} ({other['subject']})",
                "how": f"measured in this same run on the same data, {args.rounds} turn(s) "
                "each, alternating which goes first; ratios are this tree / that commit",
            }
        record = provenance(reference, argv, __file__)
        print_report(record, file=sys.stderr)
        this_tree: list[dict[str, Any]] = []
        against: list[dict[str, Any]] = []
        for turn in range(args.rounds if against_code else 1):
            # Alternate who goes first, so a machine getting busier favours neither.
            order = [(REPOSITORY, this_tree), (against_code, against)]
            for code, runs in order if turn % 2 == 0 else order[::-1]:
                if code is not None:
                    runs.append(measure(args, code))
    results: dict[str, Any] = {
        "provenance": record,
        "settings": {
            "groups": args.groups,
            "apps": args.apps,
            "switches": args.switches,
            "workers": args.workers,
            "switches_at_scale": args.switches_at_scale,
            "axfr": args.axfr,
        },
        **this_tree[0],  # "scale" and "switches" of this tree, as before
    }
    if against:
        results["this_tree_runs"] = this_tree
        results["against_runs"] = against
        results["comparison"] = compare(this_tree, against)
    write_results("groups", results, args.out)
    if against:
        print(f"\n{'measure':<55} {'against':>10} {'this tree':>10} {'ratio':>7}")
        for name, row in results["comparison"].items():
            print(f"{name:<55} {row['against']:>10} {row['this_tree']:>10} {row['ratio']!s:>7}")
    return 0


def write_results(name: str, results: dict[str, object], out: Path | None = None) -> None:
    """Print the results and keep them in benchmarks/out/NAME.json (or `out`)."""
    print(json.dumps(results, indent=2))
    path = out or REPOSITORY / "benchmarks" / "out" / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    sys.exit(main())
