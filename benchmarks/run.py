"""Benchmark fodns against Knot DNS: same zone, same queries, same CPU budget.

Each server runs alone, pinned to CPU 0; dnsperf is pinned to CPU 1, so the
two never compete for a core. The headline number is answered queries per
second of server CPU time, which stays meaningful even when the load
generator, not the server, is the bottleneck. See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import dataclasses
import json
import math
import os
import random
import re
import shutil
import signal
import socket
import string
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import dns.exception
import dns.message
import dns.query
import dns.rcode
from provenance import code_state, machine, print_report, provenance

BENCH_DIR = Path(__file__).resolve().parent
REPOSITORY_ROOT = BENCH_DIR.parent
OUT_DIR = BENCH_DIR / "out"
FODNS_BIN = REPOSITORY_ROOT / ".venv" / "bin" / "fodns"

ZONE_ORIGIN = "bench.example."
OWNER_NAME_COUNT = 10_000  # apex + ns1 + ns2 + hosts
QUERY_COUNT = 100_000
NODATA_SHARE = 0.05
NXDOMAIN_SHARE = 0.05
SEED = 20261122  # fixed so every run benchmarks byte-identical files

SERVER_CPU = "0"
DNSPERF_CPU = "1"
# Enough in flight to keep a single-threaded server busy between dnsperf's send
# bursts (both servers ran at 94-100% of their core). At 200, bursts overflowed
# Knot's default socket receive buffer and lost ~10 queries per run.
DEFAULT_OUTSTANDING = 100
DNSPERF_QUERY_TIMEOUT_S = 2
STARTUP_TIMEOUT_S = 60.0
# Busy time on the server's core not charged to it, as a share of the run, above
# which the machine was not quiet enough for the numbers to mean much.
DISTURBED_SHARE = 0.05
SHUTDOWN_TIMEOUT_S = 10.0


# --- workload -----------------------------------------------------------------


@dataclasses.dataclass
class Zone:
    """Owner name (absolute) -> record type -> rdata strings, in file order."""

    records: dict[str, dict[str, list[str]]]

    def add(self, name: str, rdtype: str, rdata: str) -> None:
        self.records.setdefault(name, {}).setdefault(rdtype, []).append(rdata)


def build_zone(rng: random.Random) -> Zone:
    """Mostly one A per host; some two A, some A+AAAA, some AAAA only, a few CNAMEs."""
    zone = Zone({})
    zone.add(
        ZONE_ORIGIN, "SOA", f"ns1.{ZONE_ORIGIN} hostmaster.{ZONE_ORIGIN} 1 7200 3600 1209600 300"
    )
    for index, glue in ((1, "127.0.0.1"), (2, "127.0.0.2")):
        zone.add(ZONE_ORIGIN, "NS", f"ns{index}.{ZONE_ORIGIN}")
        zone.add(f"ns{index}.{ZONE_ORIGIN}", "A", glue)
    cname_owners: list[str] = []
    a_owners: list[str] = []
    for index in range(OWNER_NAME_COUNT - 3):
        name = f"host-{index:05d}.{ZONE_ORIGIN}"
        ipv4 = f"10.{index >> 16 & 255}.{index >> 8 & 255}.{index & 255}"
        ipv6 = f"2001:db8::{index:x}"
        roll = rng.random()
        if roll < 0.75:
            zone.add(name, "A", ipv4)
        elif roll < 0.85:
            zone.add(name, "A", ipv4)
            zone.add(name, "A", f"10.255.{index >> 8 & 255}.{index & 255}")
        elif roll < 0.92:
            zone.add(name, "A", ipv4)
            zone.add(name, "AAAA", ipv6)
        elif roll < 0.97:
            zone.add(name, "AAAA", ipv6)
        else:
            cname_owners.append(name)
            continue
        if "A" in zone.records[name]:
            a_owners.append(name)
    # Targets carry an A record, so an A query for the alias exercises the chase.
    for name in cname_owners:
        zone.add(name, "CNAME", rng.choice(a_owners))
    return zone


def write_zone_file(zone: Zone, path: Path) -> None:
    lines = [f"$ORIGIN {ZONE_ORIGIN}", "$TTL 3600"]
    for name, rrsets in zone.records.items():
        for rdtype, rdatas in rrsets.items():
            lines.extend(f"{name} IN {rdtype} {rdata}" for rdata in rdatas)
    path.write_text("\n".join(lines) + "\n")


def build_queries(zone: Zone, rng: random.Random) -> list[str]:
    """dnsperf lines `name TYPE`: 90% with answers, 5% NODATA, 5% NXDOMAIN, shuffled."""
    existing = [
        (name, "A" if "CNAME" in rrsets else rdtype)
        for name, rrsets in zone.records.items()
        for rdtype in rrsets
    ]
    # A CNAME owner answers every type with its CNAME, so it can never be NODATA.
    nodata = [
        (name, absent)
        for name, rrsets in zone.records.items()
        if "CNAME" not in rrsets
        for absent in ("A", "AAAA", "MX", "TXT")
        if absent not in rrsets
    ]
    nodata_count = int(QUERY_COUNT * NODATA_SHARE)
    nxdomain_count = int(QUERY_COUNT * NXDOMAIN_SHARE)
    pairs = rng.choices(existing, k=QUERY_COUNT - nodata_count - nxdomain_count)
    pairs += rng.choices(nodata, k=nodata_count)
    # No generated owner is a bare 12-character alphanumeric label, so these never exist.
    alphabet = string.ascii_lowercase + string.digits
    pairs += [
        ("".join(rng.choices(alphabet, k=12)) + "." + ZONE_ORIGIN, rng.choice(("A", "AAAA")))
        for _ in range(nxdomain_count)
    ]
    rng.shuffle(pairs)
    return [f"{name} {rdtype}" for name, rdtype in pairs]


def generate_workload(out_dir: Path) -> tuple[Path, Path]:
    rng = random.Random(SEED)
    zone = build_zone(rng)
    zone_file = out_dir / "bench.example.zone"
    query_file = out_dir / "queries.txt"
    write_zone_file(zone, zone_file)
    query_file.write_text("\n".join(build_queries(zone, rng)) + "\n")
    return zone_file, query_file


# --- tools and processes ------------------------------------------------------


class BenchmarkError(Exception):
    """Something that makes the numbers meaningless: stop and say what."""


def find_executable(name: str) -> str | None:
    # knotd lives in /usr/sbin, which a non-login or non-root PATH may lack.
    search_path = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])
    return shutil.which(name, path=search_path)


def ensure_debian_packages(package_by_executable: dict[str, str]) -> None:
    """apt-get install whatever is missing; refresh the package lists only if that fails."""
    missing = sorted(
        {package for exe, package in package_by_executable.items() if not find_executable(exe)}
    )
    if not missing:
        return
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    install = [*sudo, "apt-get", "install", "-y", "-q", *missing]
    environment = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    print(f"installing Debian packages: {' '.join(missing)}", flush=True)
    if subprocess.run(install, env=environment, check=False).returncode != 0:
        subprocess.run([*sudo, "apt-get", "update", "-q"], env=environment, check=True)
        subprocess.run(install, env=environment, check=True)


def free_ports(count: int) -> list[int]:
    """Distinct loopback ports free for both TCP and UDP, as the OS hands them out."""
    held: list[socket.socket] = []
    ports: list[int] = []
    try:
        while len(ports) < count:
            tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            held += [tcp, udp]
            tcp.bind(("127.0.0.1", 0))
            port = tcp.getsockname()[1]
            with contextlib.suppress(OSError):  # UDP twin taken: just draw again
                udp.bind(("127.0.0.1", port))
                ports.append(port)
    finally:
        # Held open until all are drawn, so one call never returns a port twice.
        for sock in held:
            sock.close()
    return ports


def process_tree_cpu_seconds(root_pid: int) -> float:
    """utime + stime of a process and its live descendants (each figure covers all threads)."""
    parent_and_ticks: dict[int, tuple[int, int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            # The command name may contain spaces and parentheses; fields follow the last ')'.
            fields = (entry / "stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue  # exited while we looked
        parent_and_ticks[int(entry.name)] = (int(fields[1]), int(fields[11]) + int(fields[12]))
    ticks = 0
    pending = [root_pid]
    while pending:
        pid = pending.pop()
        ticks += parent_and_ticks.get(pid, (0, 0))[1]
        pending += [child for child, (parent, _) in parent_and_ticks.items() if parent == pid]
    return ticks / os.sysconf("SC_CLK_TCK")


def core_busy_seconds(cpu: str) -> float:
    """Time one CPU spent on anything but idling (from /proc/stat), steal excluded."""
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith(f"cpu{cpu} "):
            user, nice, system, _idle, _iowait, irq, softirq = map(int, line.split()[1:8])
            return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")
    raise BenchmarkError(f"CPU {cpu} is not in /proc/stat")


@dataclasses.dataclass
class CpuReading:
    server_s: float
    server_core_busy_s: float

    @classmethod
    def take(cls, server_pid: int) -> CpuReading:
        return cls(process_tree_cpu_seconds(server_pid), core_busy_seconds(SERVER_CPU))

    def __sub__(self, earlier: CpuReading) -> CpuReading:
        return CpuReading(
            self.server_s - earlier.server_s,
            self.server_core_busy_s - earlier.server_core_busy_s,
        )


def log_tail(log_path: Path, lines: int = 20) -> str:
    return "\n".join(log_path.read_text(errors="replace").splitlines()[-lines:])


@contextlib.contextmanager
def running_server(command: list[str], log_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """The server pinned to its CPU; always stopped on the way out, SIGKILL if it lingers."""
    with log_path.open("wb") as log:
        # taskset execs the server, so the PID we hold is the server's own.
        process = subprocess.Popen(
            ["taskset", "-c", SERVER_CPU, *command],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=SHUTDOWN_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def ask(port: int, name: str, rdtype: str) -> dns.message.Message:
    query = dns.message.make_query(name, rdtype)
    return dns.query.udp(query, "127.0.0.1", port=port, timeout=0.5)


def wait_until_answering(process: subprocess.Popen[bytes], port: int, log_path: Path) -> None:
    """Until the zone is loaded: a server may answer SERVFAIL or REFUSED before that."""
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise BenchmarkError(
                f"server exited with status {process.returncode} before answering:\n"
                + log_tail(log_path)
            )
        with contextlib.suppress(dns.exception.DNSException, OSError):
            response = ask(port, ZONE_ORIGIN, "SOA")
            if response.rcode() == dns.rcode.NOERROR and response.answer:
                return
        time.sleep(0.1)
    raise BenchmarkError(f"no answer within {STARTUP_TIMEOUT_S:.0f}s:\n" + log_tail(log_path))


def check_answers(port: int) -> None:
    """One query of each kind in the workload must get the right kind of answer."""
    probes = [
        (f"ns1.{ZONE_ORIGIN}", "A", dns.rcode.NOERROR, True),
        (f"ns1.{ZONE_ORIGIN}", "MX", dns.rcode.NOERROR, False),
        (f"no-such-name.{ZONE_ORIGIN}", "A", dns.rcode.NXDOMAIN, False),
    ]
    for name, rdtype, rcode, has_answer in probes:
        try:
            response = ask(port, name, rdtype)
        except (dns.exception.DNSException, OSError) as error:
            raise BenchmarkError(f"no answer to {name} {rdtype}: {error!r}") from None
        if response.rcode() != rcode or bool(response.answer) != has_answer:
            raise BenchmarkError(f"wrong answer to {name} {rdtype}:\n{response}")


# --- the two servers ----------------------------------------------------------

KNOT_CONF = """\
# Written by benchmarks/run.py: one UDP worker, so Knot gets one core like fodns.
server:
    rundir: "{work_dir}"
    listen: 127.0.0.1@{port}
    udp-workers: 1
    tcp-workers: 1
    background-workers: 1
database:
    storage: "{work_dir}"
    journal-db: "{work_dir}/journal"
    timer-db: "{work_dir}/timers"
control:
    listen: "{work_dir}/knot.sock"
log:
  - target: stderr
    any: info
template:
  - id: default
    storage: "{work_dir}"
    zonefile-load: whole
    zonefile-sync: -1
    journal-content: none
    dnssec-signing: off
zone:
  - domain: {origin}
    file: "{zone_file}"
"""

FODNS_CONF = """\
[dns]
listen = ["127.0.0.1:{port}"]
workers = {workers}
udp_payload = 1232
{rrl}
[api]
listen = "127.0.0.1:{api_port}"

[store]
path = "{work_dir}/fodns.db"

[[zones]]
name = "{origin}"
file = "{zone_file}"
"""
# Response rate limiting settings under test (--rrl); see benchmarks/README.md.
# dnsperf sends from 127.0.0.1, which the default exempts; "counted" counts every
# reply as it would a remote client's, with a limit far above dnsperf's rate.
FODNS_RRL_SETTINGS = {
    "default": "",
    "counted": "rrl_exempt = []\nrrl_responses_per_second = 1000000\n",
    "off": "rrl_responses_per_second = 0\n",
}


@dataclasses.dataclass
class ServerSetup:
    command: list[str]
    port: int
    version: str
    api_port: int | None = None  # fodns's admin API (/metrics), for benchmarks/health.py


def knot_setup(work_dir: Path, zone_file: Path, rrl: str = "default") -> ServerSetup:
    del rrl  # Knot runs without its rrl module, as it does by default
    knotd = find_executable("knotd")
    assert knotd is not None, "ensure_debian_packages installs it"
    [port] = free_ports(1)
    conf = work_dir / "knot.conf"
    conf.write_text(
        KNOT_CONF.format(work_dir=work_dir, port=port, origin=ZONE_ORIGIN, zone_file=zone_file)
    )
    version = subprocess.run([knotd, "--version"], capture_output=True, text=True, check=True)
    return ServerSetup([knotd, "-c", str(conf)], port, version.stdout.strip())


def fodns_setup(
    work_dir: Path, zone_file: Path, rrl: str = "default", workers: int = 1
) -> ServerSetup:
    """fodns with `workers` DNS processes (1, as `make bench` runs it: DNS, the API and
    the health checker on one event loop); its store is `work_dir`/fodns.db."""
    port, api_port = free_ports(2)
    conf = work_dir / "fodns.toml"
    conf.write_text(
        FODNS_CONF.format(
            work_dir=work_dir,
            port=port,
            api_port=api_port,
            origin=ZONE_ORIGIN.rstrip("."),
            zone_file=zone_file,
            rrl=FODNS_RRL_SETTINGS[rrl],
            workers=workers,
        )
    )
    version = subprocess.run(
        [str(FODNS_BIN), "--version"], capture_output=True, text=True, check=True
    )
    return ServerSetup(
        [str(FODNS_BIN), "serve", "--config", str(conf)], port, version.stdout.strip(), api_port
    )


SERVER_SETUPS = {"knot": knot_setup, "fodns": fodns_setup}


# --- measuring ----------------------------------------------------------------

# dnsperf's closing statistics: "  Queries per second:   150047.462302".
SUMMARY_LINE = re.compile(r"^\s+([A-Z][^:]*):\s+(.+)$")


@dataclasses.dataclass
class ServerResult:
    server: str
    version: str
    queries_sent: int
    queries_completed: int
    queries_lost: int
    response_codes: str
    run_time_s: float
    queries_per_second: float
    latency_avg_ms: float
    latency_p50_ms: float
    latency_p99_ms: float
    latency_max_ms: float
    server_cpu_s: float
    # Server CPU seconds per second of the run: near 1.0 means the server was the bottleneck.
    server_cpu_share: float
    queries_per_cpu_second: float
    # Busy time on the server's core not charged to the server: other processes
    # and interrupt work. Large values mean the run was disturbed.
    server_core_other_s: float


def run_dnsperf(port: int, query_file: Path, args: argparse.Namespace, transcript: Path) -> None:
    dnsperf = find_executable("dnsperf")
    assert dnsperf is not None, "ensure_debian_packages installs it"
    # -v prints one line per query with its latency: the only way to percentiles in 2.10.
    command = [
        *("taskset", "-c", DNSPERF_CPU, dnsperf, "-s", "127.0.0.1", "-p", str(port)),
        *("-d", str(query_file), "-l", str(args.duration), "-q", str(args.outstanding)),
        *("-c", "1", "-T", "1", "-t", str(DNSPERF_QUERY_TIMEOUT_S), "-e", "-v"),
    ]
    with transcript.open("wb") as out:
        finished = subprocess.run(
            command, stdout=out, stderr=subprocess.PIPE, timeout=args.duration + 60, check=False
        )
    if finished.returncode != 0:
        stderr_tail = finished.stderr.decode(errors="replace")[-2000:]
        raise BenchmarkError(f"dnsperf failed with status {finished.returncode}:\n{stderr_tail}")


def read_transcript(path: Path) -> tuple[dict[str, str], collections.Counter[int]]:
    """dnsperf's statistics, and a histogram of answered queries by latency in microseconds.

    With -v dnsperf prints `> RCODE name type seconds` per answer (six decimals, so
    microseconds are exact) and `> T name type` per query it gave up on.
    """
    summary: dict[str, str] = {}
    latency_tokens: collections.Counter[str] = collections.Counter()
    with path.open() as transcript:
        for line in transcript:
            if line.startswith("> "):
                if not line.startswith("> T "):
                    latency_tokens[line.rsplit(" ", 1)[1]] += 1
            elif match := SUMMARY_LINE.match(line):
                summary[match[1]] = match[2]
    histogram: collections.Counter[int] = collections.Counter()
    for token, count in latency_tokens.items():
        histogram[round(float(token) * 1_000_000)] += count
    return summary, histogram


def percentile_ms(histogram: collections.Counter[int], fraction: float) -> float:
    """The latency that `fraction` of answered queries did not exceed (nearest rank)."""
    rank = max(1, math.ceil(histogram.total() * fraction))
    seen = 0
    for micros in sorted(histogram):
        seen += histogram[micros]
        if seen >= rank:
            return micros / 1000
    raise BenchmarkError("no answered queries")


def summarise(
    server: str,
    version: str,
    summary: dict[str, str],
    histogram: collections.Counter[int],
    cpu: CpuReading,
) -> ServerResult:
    def number(key: str) -> float:
        # Values look like "750359 (100.00%)" or "0.000681 (min 0.000007, max 0.016688)".
        return float(summary[key].split()[0])

    if not histogram or "Queries per second" not in summary:
        raise BenchmarkError(f"{server}: dnsperf got no answers; statistics: {summary}")
    completed = int(number("Queries completed"))
    run_time = number("Run time (s)")
    return ServerResult(
        server=server,
        version=version,
        queries_sent=int(number("Queries sent")),
        queries_completed=completed,
        queries_lost=int(number("Queries lost")),
        response_codes=summary.get("Response codes", ""),
        run_time_s=run_time,
        queries_per_second=number("Queries per second"),
        latency_avg_ms=number("Average Latency (s)") * 1000,
        latency_p50_ms=percentile_ms(histogram, 0.50),
        latency_p99_ms=percentile_ms(histogram, 0.99),
        latency_max_ms=max(histogram) / 1000,
        server_cpu_s=cpu.server_s,
        server_cpu_share=cpu.server_s / run_time,
        queries_per_cpu_second=completed / cpu.server_s if cpu.server_s else float("inf"),
        server_core_other_s=max(0.0, cpu.server_core_busy_s - cpu.server_s),
    )


def benchmark(
    server: str, zone_file: Path, query_file: Path, args: argparse.Namespace
) -> ServerResult:
    with tempfile.TemporaryDirectory(prefix=f"fodns-bench-{server}-") as temp:
        work_dir = Path(temp)
        setup = SERVER_SETUPS[server](work_dir, zone_file, args.rrl)
        log_path = work_dir / "server.log"
        transcript = work_dir / "dnsperf.txt"
        with running_server(setup.command, log_path) as process:
            wait_until_answering(process, setup.port, log_path)
            check_answers(setup.port)
            print(
                f"{server}: serving on 127.0.0.1:{setup.port}, dnsperf for {args.duration}s",
                flush=True,
            )
            before = CpuReading.take(process.pid)
            run_dnsperf(setup.port, query_file, args, transcript)
            cpu = CpuReading.take(process.pid) - before
            if process.poll() is not None:
                raise BenchmarkError(f"{server} died during the run:\n" + log_tail(log_path))
        summary, histogram = read_transcript(transcript)
    return summarise(server, setup.version, summary, histogram, cpu)


# --- reporting ----------------------------------------------------------------

TABLE_COLUMNS = [  # heading, ServerResult field, width, number format
    ("server", "server", 7, ""),
    ("QPS", "queries_per_second", 9, ".0f"),
    ("lost", "queries_lost", 6, "d"),
    ("avg ms", "latency_avg_ms", 7, ".3f"),
    ("p50 ms", "latency_p50_ms", 7, ".3f"),
    ("p99 ms", "latency_p99_ms", 7, ".3f"),
    ("max ms", "latency_max_ms", 7, ".3f"),
    ("CPU s", "server_cpu_s", 6, ".2f"),
    ("CPU %", "server_cpu_share", 6, ".0%"),
    ("q/CPU-s", "queries_per_cpu_second", 9, ".0f"),
    ("other s", "server_core_other_s", 7, ".2f"),
]
TABLE_LEGEND = """\
CPU s, CPU %: server CPU time during the run, and as a share of the run's length
(near 100%: the server set the pace; below: dnsperf or the kernel did).
q/CPU-s: answered queries per server CPU-second. other s: busy time on the
server's core not charged to the server (other processes, interrupts): near 0
when the machine is otherwise quiet."""


def print_table(results: list[ServerResult], ratio: float | None, rrl: str) -> None:
    print()
    print("  ".join(f"{heading:>{width}}" for heading, _, width, _ in TABLE_COLUMNS))
    for result in results:
        cells = (f"{getattr(result, key):>{width}{fmt}}" for _, key, width, fmt in TABLE_COLUMNS)
        print("  ".join(cells))
    print(f"\n{TABLE_LEGEND}\n")
    for result in results:
        print(f"{result.server}: {result.version}; response codes: {result.response_codes}")
        if result.server_core_other_s > DISTURBED_SHARE * result.run_time_s:
            print(f"{result.server}: WARNING: other work held CPU {SERVER_CPU}; numbers disturbed")
    settings = FODNS_RRL_SETTINGS[rrl].strip().replace("\n", ", ") or "as shipped"
    print(f"fodns response rate limiting: {rrl} ({settings})")
    if ratio is not None:
        print(f"\nfodns/Knot queries per server CPU-second: {ratio:.3f}")


def machine_info() -> dict[str, object]:
    """The machine, as benchmarks/provenance.py describes it for every benchmark."""
    return machine()


def dnsperf_version() -> str:
    dnsperf = find_executable("dnsperf")
    assert dnsperf is not None, "ensure_debian_packages installs it"
    usage = subprocess.run([dnsperf, "-h"], capture_output=True, text=True, check=False)
    found = re.search(r"Version (\S+)", usage.stdout + usage.stderr)
    return found[1] if found else "unknown"


def fodns_revision() -> str:
    """The commit measured, "-dirty" if the server's code differs from it (edits to
    benchmarks/ change no fodns number; provenance's `dirty` counts them too)."""
    return str(code_state()["revision"])


def knot_version() -> str | None:
    knotd = find_executable("knotd")
    if knotd is None:
        return None
    return subprocess.run([knotd, "--version"], capture_output=True, text=True).stdout.strip()


def reference_of(servers: list[str]) -> str | dict[str, object]:
    """What this run's fodns numbers are measured against: Knot, in the same run."""
    if "knot" not in servers:
        return "none: --only fodns, so no Knot in this run and no ratio"
    return {
        "server": knot_version() or "knotd",
        "how": "Knot DNS loaded in this same run with the same zone, queries and CPU "
        "pinning, one server after the other; the headline is fodns/Knot queries per "
        "server CPU-second",
    }


def write_json(
    results: list[ServerResult],
    ratio: float | None,
    args: argparse.Namespace,
    machine: dict[str, object],
    record: dict[str, object],
) -> Path:
    path = OUT_DIR / "results.json"
    document = {
        "provenance": record,
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": machine,
        "settings": {
            "duration_s": args.duration,
            "outstanding_queries": args.outstanding,
            "query_timeout_s": DNSPERF_QUERY_TIMEOUT_S,
            "dnsperf": dnsperf_version(),
            "fodns_revision": fodns_revision(),
            "fodns_rrl": args.rrl,
            "fodns_rrl_settings": FODNS_RRL_SETTINGS[args.rrl],
            "command_line": sys.argv,
            "owner_names": OWNER_NAME_COUNT,
            "query_lines": QUERY_COUNT,
            "seed": SEED,
            "server_cpu": SERVER_CPU,
            "dnsperf_cpu": DNSPERF_CPU,
        },
        "results": [dataclasses.asdict(result) for result in results],
        "fodns_over_knot_queries_per_cpu_second": ratio,
    }
    path.write_text(json.dumps(document, indent=2) + "\n")
    return path


# --- command line -------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--duration", type=int, default=15, help="seconds of load per server (default 15)"
    )
    parser.add_argument(
        "--outstanding",
        type=int,
        default=DEFAULT_OUTSTANDING,
        help=f"queries dnsperf keeps in flight (default {DEFAULT_OUTSTANDING})",
    )
    parser.add_argument("--only", choices=sorted(SERVER_SETUPS), help="benchmark one server")
    parser.add_argument(
        "--rrl",
        choices=sorted(FODNS_RRL_SETTINGS),
        default="default",
        help="fodns response rate limiting: the shipped default (dnsperf's 127.0.0.1 "
        "exempt), every reply counted but none limited, or off (default: default)",
    )
    args = parser.parse_args(argv)
    if args.duration < 1 or args.outstanding < 1:
        parser.error("--duration and --outstanding must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    servers = [args.only] if args.only else ["knot", "fodns"]
    if "fodns" in servers and not FODNS_BIN.exists():
        print(f"{FODNS_BIN} not found: run `make` first, or use --only knot", file=sys.stderr)
        return 2
    needed = {"dnsperf": "dnsperf"} | ({"knotd": "knot"} if "knot" in servers else {})
    ensure_debian_packages(needed)
    machine = machine_info()
    record = provenance(reference_of(servers), argv, __file__)
    OUT_DIR.mkdir(exist_ok=True)
    zone_file, query_file = generate_workload(OUT_DIR)
    results: list[ServerResult] = []
    failed = False
    for server in servers:
        try:
            results.append(benchmark(server, zone_file, query_file, args))
        except BenchmarkError as error:
            print(f"{server}: {error}", file=sys.stderr)
            failed = True
    by_server = {result.server: result for result in results}
    ratio = None
    if {"fodns", "knot"} <= by_server.keys():
        ratio = by_server["fodns"].queries_per_cpu_second / by_server["knot"].queries_per_cpu_second
    if results:  # keep the last results.json rather than overwrite it with nothing
        print_table(results, ratio, args.rrl)
        print()
        print_report(record)
        print(f"\nwritten: {write_json(results, ratio, args, machine, record)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
