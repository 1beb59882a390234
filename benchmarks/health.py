"""Health checks against DNS: what checking 10,000 addresses costs DNS, and how long a
stopped server takes to leave DNS (issue 13).

    .venv/bin/python benchmarks/health.py [--part both|cost|detection] [--out PATH]
      cost:      [--addresses 10000] [--per-app 4] [--check-interval 10] [--check-type http]
                 [--workers 1] [--check-cpu server other] [--rounds 2] [--duration 20]
                 [--outstanding 100]
      detection: [--groups 20] [--interval 1] [--fall 3] [--rise 2] [--detection-rounds 10]

1. Cost to DNS: `make bench` (benchmarks/run.py: fodns against Knot with dnsperf, each
   pinned to CPU 0, dnsperf to CPU 1) with a store of 2,500 apps of 4 web servers each,
   in 1,250 automatic groups, taking turns without checks and with an HTTP check of
   every app (so 10,000 addresses) every `--check-interval` seconds. The addresses are
   10,000 loopback addresses 127.64.0.1 up, all served by one small asyncio HTTP
   responder process pinned to dnsperf's CPU. fodns's check attempts run in a child
   process of `fodns serve` (`python -m fodns.probeworker`, nice 10), which inherits
   the server's CPU 0; with `--check-cpu other` the harness moves it to CPU 1 once it
   has started, as a deployment with a core to spare would have it, with `server` it
   stays beside DNS (the worst case). Only the processes that answer DNS count as the
   server's CPU: with `--workers 1` the main process (DNS, the API, and applying the
   check results), with more the DNS workers (the main process is then moved to CPU
   1, as before). The check process's own CPU is reported apart. Each turn reports
   fodns's queries per server CPU-second over Knot's of the same round, the checks
   fodns made meanwhile (its /metrics) and the connections the responder took.
2. Detection: `fodns serve` with 2 workers and `--groups` automatic groups, each a
   primary and a backup app of one address; the live side's HTTP server of each group
   is stopped (its listening socket closed: connections are refused) at a random
   moment within one check interval, and 16 UDP sockets with distinct source ports
   (which SO_REUSEPORT spreads over both workers) ask for each group until every one
   gets the other side's address. Per group: stop -> app down (the health_changed
   event) -> group switched (the group_switched event) -> every socket answered the
   other side. Then the stopped servers start again, every app must be up, and the
   next round stops the side now live. Reported against fall x interval.

Everything binds loopback addresses on ports the OS picks; every loop is bounded in
count and time; only processes started here are stopped, by their handles (the check
process is fodns's own child: it is only found, read and moved, never signalled).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import multiprocessing
import multiprocessing.connection
import os
import random
import shutil
import socket
import sqlite3
import statistics
import sys
import tempfile
import time
import urllib.request
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import dns.message
import groups
import run
from provenance import print_report, provenance

from fodns.probeworker import TICK as CHECK_PROCESS_TICK
from fodns.store import Store, ZoneDefaults

ACTOR = "benchmark"
COST_ZONE = run.ZONE_ORIGIN.rstrip(".")
DETECTION_ZONE = "fo.example.net"  # groups.write_config's zone
HEALTH_PATH = "/health"
# The check process starts due rounds every TICK seconds (fodns/probeworker.py), so
# each round may start up to one tick late: part of the window detection falls in.
CHECKER_TICK = CHECK_PROCESS_TICK
CHECK_PROCESS_MARK = b"fodns.probeworker"  # in the check process's command line
# Where the check process runs during a cost run: left on the server's CPU (as it
# starts: a child inherits its parent's affinity), or moved to the other one.
CHECK_CPUS = {"server": int(run.SERVER_CPU), "other": int(run.DNSPERF_CPU)}
START_TIMEOUT = 120.0  # seconds for targets to listen or every app to be up
SOCKETS = 16  # UDP sockets asking each group (both workers, but with odds 2 ** -15)
TARGET_REQUEST_MAX = 8192


# --- the HTTP servers checked -------------------------------------------------------

RESPONSE = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\n"
    b"Connection: close\r\n\r\nok\n"
)


class _Responder(asyncio.Protocol):
    """One connection: 200 "ok" once the request's head is in, then close. A TCP check
    connects and closes without a request; its connection is counted all the same."""

    def __init__(self, accepted: list[int]) -> None:
        self._accepted = accepted
        self._buffer = b""
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        self._accepted[0] += 1

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        if b"\r\n\r\n" in self._buffer or len(self._buffer) > TARGET_REQUEST_MAX:
            assert self._transport is not None
            self._transport.write(RESPONSE)
            self._transport.close()


def serve_targets(
    addresses: list[str],
    port: int,
    cpu: int | None,
    commands: multiprocessing.connection.Connection,
) -> None:
    """The responder process: one listening socket per address, all on `port`,
    driven by (command, argument) messages (see Targets)."""
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})
    asyncio.run(_serve_targets(addresses, port, commands))


async def _serve_targets(
    addresses: list[str], port: int, commands: multiprocessing.connection.Connection
) -> None:
    loop = asyncio.get_running_loop()
    accepted = [0]
    listening: dict[str, asyncio.Server] = {}

    async def start(address: str) -> float:
        listening[address] = await loop.create_server(
            lambda: _Responder(accepted), address, port, backlog=1024
        )
        return time.time()

    def stop(address: str) -> float:
        # Server.close() closes the listening socket at once: every later connect
        # to the address is refused, as when a web server's process has died.
        listening.pop(address).close()
        return time.time()

    for address in addresses:
        await start(address)
    commands.send(("ready", len(listening)))
    readable = asyncio.Event()
    loop.add_reader(commands.fileno(), readable.set)
    while True:
        await readable.wait()
        readable.clear()
        while commands.poll():
            try:
                command, argument = commands.recv()
            except EOFError:
                return  # the harness is gone
            if command == "stop":
                commands.send({address: stop(address) for address in argument})
            elif command == "start":
                commands.send({address: await start(address) for address in argument})
            elif command == "accepted":
                commands.send(accepted[0])
            else:  # "quit"
                commands.send("bye")
                return


class Targets:
    """The responder process (multiprocessing, spawned): HTTP servers on `addresses`,
    all on `port`, that the harness stops and starts; on `cpu` if given. It starts in
    the background: `wait_ready` before relying on it."""

    def __init__(self, addresses: list[str], port: int, cpu: int | None = None) -> None:
        context = multiprocessing.get_context("spawn")
        self._commands, theirs = context.Pipe()
        self._count = len(addresses)
        self.process = context.Process(
            target=serve_targets, args=(addresses, port, cpu, theirs), daemon=True
        )
        self.process.start()
        theirs.close()

    def wait_ready(self) -> Targets:
        try:
            ready = self._commands.recv() if self._commands.poll(START_TIMEOUT) else None
        except EOFError:  # it died: its traceback is on stderr
            ready = "exited"
        if ready != ("ready", self._count):
            self.close()
            raise RuntimeError(f"the HTTP targets did not start: {ready}")
        return self

    def call(self, command: str, argument: object = None) -> Any:
        self._commands.send((command, argument))
        if not self._commands.poll(60):
            raise RuntimeError(f"the HTTP targets did not answer {command!r} within 60 s")
        return self._commands.recv()

    def stop(self, addresses: Sequence[str]) -> dict[str, float]:
        """Close these addresses' listening sockets; when each was closed (epoch)."""
        return dict(self.call("stop", list(addresses)))

    def start(self, addresses: Sequence[str]) -> None:
        self.call("start", list(addresses))

    def accepted(self) -> int:
        """Connections accepted so far, over every address."""
        return int(self.call("accepted"))

    def close(self) -> None:
        if self.process.is_alive():
            with contextlib.suppress(OSError, RuntimeError, EOFError):
                self.call("quit")
            self.process.join(10)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(10)
        self._commands.close()


def loopback_addresses(count: int, second_octet: int) -> list[str]:
    """`count` addresses 127.<second_octet>.x.y, y from 1 to 250 (Linux routes all of
    127.0.0.0/8 to the loopback interface, and any of it can be bound)."""
    found = []
    for index in range(count):
        block, host = divmod(index, 250)
        found.append(f"127.{second_octet + block // 256}.{block % 256}.{host + 1}")
    return found


def free_port_on(address: str) -> int:
    with socket.socket() as sock:
        sock.bind((address, 0))
        return int(sock.getsockname()[1])


# --- fodns: its store, its metrics, its processes -----------------------------------


def check_json(kind: str, port: int, interval: float, **more: Any) -> dict[str, Any]:
    check: dict[str, Any] = {"type": kind, "port": port, "interval": interval, **more}
    if kind != "tcp":
        check["path"] = HEALTH_PATH
    return check


def fill_store(
    path: Path,
    zone: str,
    web_servers: Sequence[Sequence[str]],
    check: dict[str, Any] | None,
    **group_settings: Any,
) -> list[str]:
    """Apps app-00000, ... with these web servers (and `check`, if any), and automatic
    groups of pairs of them (primary app 2i, backup 2i+1); their labels. Through the
    Store API on the file fodns will serve, while no fodns runs."""
    store = Store(path, {zone: ZoneDefaults(serial=1)})
    labels = []
    try:
        for index, addresses in enumerate(web_servers):
            name = f"app-{index:05d}"
            store.create_app(ACTOR, name, web_servers=list(addresses))
            if check is not None:
                store.set_check(ACTOR, name, check)
        for index in range(len(web_servers) // 2):
            label = f"hc-{index:05d}"
            store.create_group(
                ACTOR,
                zone,
                label=label,
                primary=f"app-{2 * index:05d}",
                backup=f"app-{2 * index + 1:05d}",
                failover="auto",
                **group_settings,
            )
            labels.append(label)
    finally:
        store.close()
    return labels


@dataclasses.dataclass
class HealthMetrics:
    """fodns's health checker as its /metrics shows it."""

    checks_ok: float = 0.0
    checks_failed: float = 0.0
    check_seconds_sum: float = 0.0
    check_seconds_count: float = 0.0
    apps: int = 0
    apps_up: int = 0
    auto_switches: float = 0.0

    @classmethod
    def scrape(cls, api_port: int) -> HealthMetrics:
        url = f"http://127.0.0.1:{api_port}/metrics"
        with urllib.request.urlopen(url, timeout=30) as response:
            text = response.read().decode()
        found = cls()
        for line in text.splitlines():
            name, _, value_text = line.rpartition(" ")
            if line.startswith("#") or not name:
                continue
            value = float(value_text)
            if name.startswith("fodns_health_checks_total{"):
                if 'result="ok"' in name:
                    found.checks_ok += value
                else:
                    found.checks_failed += value
            elif name == "fodns_health_check_seconds_sum":
                found.check_seconds_sum = value
            elif name == "fodns_health_check_seconds_count":
                found.check_seconds_count = value
            elif name.startswith("fodns_app_up{"):
                found.apps += 1
                found.apps_up += value == 1.0
            elif name == "fodns_auto_switches_total":
                found.auto_switches = value
        return found


def wait_for_api(api_port: int, timeout: float = START_TIMEOUT) -> None:
    """Until fodns's API answers: with one worker DNS may answer before it listens."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            HealthMetrics.scrape(api_port)
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def wait_all_up(api_port: int, apps: int, timeout: float = START_TIMEOUT) -> float:
    """Seconds until the checker says every one of `apps` apps is up."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        seen = HealthMetrics.scrape(api_port)
        if seen.apps == apps and seen.apps_up == apps:
            return time.monotonic() - started
        time.sleep(0.1)
    raise RuntimeError(f"not every app was up within {timeout:.0f} s: {seen}")


def own_cpu_seconds(pid: int) -> float:
    """utime + stime of one process (all its threads), not of its children."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children(parent_pid: int) -> dict[int, bytes]:
    """A process's children, each with its command line (arguments NUL-separated)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):  # exited while we looked
            parent = int((entry / "stat").read_text().rpartition(")")[2].split()[1])
            if parent == parent_pid:
                found[int(entry.name)] = (entry / "cmdline").read_bytes()
    return found


def dns_worker_pids(main_pid: int) -> list[int]:
    """fodns's DNS workers: its children but multiprocessing's resource tracker and the
    check process."""
    return [
        pid
        for pid, command in children(main_pid).items()
        if b"resource_tracker" not in command and CHECK_PROCESS_MARK not in command
    ]


def check_process_pid(main_pid: int, timeout: float = START_TIMEOUT) -> int:
    """fodns's check process (fodns/probeworker.py), once the checker has started it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [pid for pid, cmd in children(main_pid).items() if CHECK_PROCESS_MARK in cmd]
        if len(found) == 1:
            return found[0]
        time.sleep(0.05)
    raise run.BenchmarkError(f"no single check process under {main_pid} within {timeout:.0f} s")


def pin_process(pid: int, cpu: int) -> None:
    """Every thread of `pid` onto `cpu` (threads it starts later inherit it)."""
    for thread in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(ProcessLookupError):
            os.sched_setaffinity(int(thread.name), {cpu})


# --- 1. cost to DNS ---------------------------------------------------------------


def fodns_cost_run(
    zone_file: Path,
    query_file: Path,
    settings: argparse.Namespace,
    workers: int,
    store: Path,
    apps: int,
    check_cpu: str | None,
    targets: Targets,
) -> dict[str, Any]:
    """One dnsperf run against fodns serving a fresh copy of `store`: its `apps` apps
    checked with the check process on `check_cpu` ("server" or "other"), or, if None,
    not checked (the check process then idles where it started, on the server's CPU)."""
    checked = check_cpu is not None
    label = f"fodns-w{workers}-{f'checks-{check_cpu}-cpu' if checked else 'none'}"
    with tempfile.TemporaryDirectory(prefix="fodns-health-cost-") as temp:
        work_dir = Path(temp)
        setup = run.fodns_setup(work_dir, zone_file, "default", workers)
        assert setup.api_port is not None
        # Closing the last connection checkpoints the WAL into the file (SQLite's
        # default), so the file alone is the whole store; a -wal left over goes too.
        for suffix in ("", "-wal"):
            if Path(f"{store}{suffix}").exists():
                shutil.copyfile(f"{store}{suffix}", work_dir / f"fodns.db{suffix}")
        log_path = work_dir / "server.log"
        transcript = work_dir / "dnsperf.txt"
        with run.running_server(setup.command, log_path) as process:
            run.wait_until_answering(process, setup.port, log_path)
            run.check_answers(setup.port)
            wait_for_api(setup.api_port)
            # The check process is fodns's child, started once an app has a check: found
            # by its command line, moved (taskset -p, as an operator would) before its
            # first rounds are done, so the start-up's checks run where the measured ones
            # do. Without checks there is none.
            checker = check_process_pid(process.pid) if checked else None
            if checker is not None and check_cpu is not None:
                pin_process(checker, CHECK_CPUS[check_cpu])
            dns_pids = [process.pid]
            if workers > 1:
                # The main process (the API, applying check results) off the DNS
                # workers' core, as before the check process existed; the workers, and
                # the check process, were forked before and keep their own CPUs.
                pin_process(process.pid, int(run.DNSPERF_CPU))
                dns_pids = dns_worker_pids(process.pid)
            # From a start every address is unknown; the first checks bring each app up
            # (rise) and write it to the log, which DNS follows. Measure after that.
            until_up = wait_all_up(setup.api_port, apps) if checked else 0.0
            # The last of those events reach the DNS table; the same pause without
            # checks, so both runs start alike.
            time.sleep(2.0)
            checker_cpus = [] if checker is None else sorted(os.sched_getaffinity(checker))
            print(
                f"{label}: serving on 127.0.0.1:{setup.port}, dnsperf for {settings.duration}s",
                flush=True,
            )
            checks_before = HealthMetrics.scrape(setup.api_port)
            accepted_before = targets.accepted()
            main_before = own_cpu_seconds(process.pid)
            checker_before = 0.0 if checker is None else own_cpu_seconds(checker)
            dns_before = sum(own_cpu_seconds(pid) for pid in dns_pids)
            core_before = run.core_busy_seconds(run.SERVER_CPU)
            run.run_dnsperf(setup.port, query_file, settings, transcript)
            dns_cpu = sum(own_cpu_seconds(pid) for pid in dns_pids) - dns_before
            core_busy = run.core_busy_seconds(run.SERVER_CPU) - core_before
            checker_cpu = 0.0 if checker is None else own_cpu_seconds(checker) - checker_before
            main_cpu = own_cpu_seconds(process.pid) - main_before
            accepted = targets.accepted() - accepted_before
            checks_after = HealthMetrics.scrape(setup.api_port)
            if process.poll() is not None:
                raise run.BenchmarkError(f"{label} died during the run:\n" + run.log_tail(log_path))
            if checker is not None and check_process_pid(process.pid, 5.0) != checker:
                raise run.BenchmarkError(f"{label}: the check process was started again")
        summary, histogram = run.read_transcript(transcript)
    # The check process's CPU on the server's core is fodns's, not another tenant's:
    # it is left out of the core's "other" work (run.summarise: busy minus server).
    on_core = checker_cpu if checker_cpus == [int(run.SERVER_CPU)] else 0.0
    result = run.summarise(
        label, setup.version, summary, histogram, run.CpuReading(dns_cpu, core_busy - on_core)
    )
    seconds = result.run_time_s
    made = checks_after.check_seconds_count - checks_before.check_seconds_count
    check_seconds = checks_after.check_seconds_sum - checks_before.check_seconds_sum
    return {
        "workers": workers,
        "checks": checked,
        "check_cpu": check_cpu,
        "dns": dataclasses.asdict(result),
        "seconds_until_every_app_up": round(until_up, 1),
        "checks_made": made,
        "checks_per_second": round(made / seconds, 1),
        "checks_failed": checks_after.checks_failed - checks_before.checks_failed,
        "check_ms_mean": round(1000 * check_seconds / made, 2) if made else None,
        "target_connections": accepted,
        "target_connections_per_second": round(accepted / seconds, 1),
        # The check process (fodns/probeworker.py): its CPUs as read before dnsperf,
        # its own CPU seconds during the run, and per check made.
        "check_process_cpus": checker_cpus,
        "check_process_cpu_s": round(checker_cpu, 2),
        "check_process_cpu_ms_per_check": round(1000 * checker_cpu / made, 3) if made else None,
        # With workers > 1: the main process (the API, applying results; on CPU 1). With
        # one worker it is the DNS process, already in dns.server_cpu_s.
        "main_process_cpu_s": round(main_cpu, 2) if workers > 1 else None,
    }


def measure_cost(args: argparse.Namespace) -> dict[str, Any]:
    run.ensure_debian_packages({"dnsperf": "dnsperf", "knotd": "knot"})
    run.OUT_DIR.mkdir(exist_ok=True)
    zone_file, query_file = run.generate_workload(run.OUT_DIR)
    addresses = loopback_addresses(args.addresses, 64)
    web_servers = [
        addresses[start : start + args.per_app] for start in range(0, len(addresses), args.per_app)
    ]
    port = free_port_on(addresses[0])
    check = check_json(args.check_type, port, args.check_interval)
    settings = argparse.Namespace(
        duration=args.duration, outstanding=args.outstanding, rrl="default"
    )
    print(f"starting HTTP targets on {len(addresses)} loopback addresses, port {port}", flush=True)
    # On dnsperf's CPU, so the servers checked never take the core DNS is measured on.
    targets = Targets(addresses, port, cpu=int(run.DNSPERF_CPU)).wait_ready()
    knots: list[dict[str, Any]] = []
    runs: list[dict[str, Any]] = []
    try:
        with tempfile.TemporaryDirectory(prefix="fodns-health-stores-") as temp:
            # The same apps and groups in both, built once: the only difference is
            # the checks. Each run serves a fresh copy.
            stores = {False: Path(temp) / "none.db", True: Path(temp) / "checks.db"}
            fill_store(stores[False], COST_ZONE, web_servers, None)
            fill_store(stores[True], COST_ZONE, web_servers, check)
            for turn in range(args.rounds):
                knot = run.benchmark("knot", zone_file, query_file, settings)
                knots.append(dataclasses.asdict(knot))
                # Alternate the order, so a machine getting busier favours none.
                turns: list[str | None] = [None, *args.check_cpu]
                for workers in args.workers:
                    for check_cpu in turns if turn % 2 == 0 else turns[::-1]:
                        measured = fodns_cost_run(
                            zone_file,
                            query_file,
                            settings,
                            workers,
                            stores[check_cpu is not None],
                            len(web_servers),
                            check_cpu,
                            targets,
                        )
                        measured["round"] = turn + 1
                        measured["fodns_over_knot"] = round(
                            measured["dns"]["queries_per_cpu_second"] / knot.queries_per_cpu_second,
                            4,
                        )
                        runs.append(measured)
    finally:
        targets.close()
    return {
        "apps": len(web_servers),
        "groups": len(web_servers) // 2,
        "addresses": len(addresses),
        "check": check,
        "knot": knots,
        "runs": runs,
        "summary": cost_summary(runs, args.workers, args.check_cpu),
    }


def cost_summary(
    runs: list[dict[str, Any]], workers_counts: list[int], check_cpus: list[str]
) -> list[dict[str, Any]]:
    """Per worker count and place of the check process: the fodns/Knot ratio without
    and with checks (median over rounds, and each round's), the change in percent
    (of the medians, and round by round), and the check process's CPU and checks/s."""
    rows = []
    for workers in workers_counts:
        mine = [r for r in runs if r["workers"] == workers]
        without = [r["fodns_over_knot"] for r in mine if not r["checks"]]
        median_without = statistics.median(without)
        for check_cpu in check_cpus:
            checked = [r for r in mine if r["check_cpu"] == check_cpu]
            with_checks = [r["fodns_over_knot"] for r in checked]
            pairs = [
                round(100 * (w / o - 1), 1) for o, w in zip(without, with_checks, strict=True) if o
            ]
            median_with = statistics.median(with_checks)
            rows.append(
                {
                    "workers": workers,
                    "check_cpu": check_cpu,
                    "ratio_without_checks": without,
                    "ratio_with_checks": with_checks,
                    "median_without": round(median_without, 3),
                    "median_with": round(median_with, 3),
                    "change_percent": round(100 * (median_with / median_without - 1), 1),
                    "change_percent_by_round": pairs,
                    "check_process_cpu_s": [r["check_process_cpu_s"] for r in checked],
                    "checks_per_second": [r["checks_per_second"] for r in checked],
                }
            )
    return rows


def print_cost(cost: dict[str, Any]) -> None:
    print(
        f"\nCost: {cost['addresses']} addresses ({cost['apps']} apps, {cost['groups']} "
        f"automatic groups), check {json.dumps(cost['check'])}"
    )
    heading = (
        f"{'round':>5} {'workers':>7} {'checks':>6} {'QPS':>8} {'p99 ms':>7} {'max ms':>7} "
        f"{'CPU %':>6} {'q/CPU-s':>8} {'/Knot':>6} {'other s':>7} {'checks/s':>8} "
        f"{'failed':>6} {'check ms':>8} {'chk CPU s':>9} {'chk ms/ck':>9} {'main CPU s':>10}"
    )
    print(heading)
    for item in cost["runs"]:
        dns_result = item["dns"]
        where = item["check_cpu"] or "no"
        main_cpu = item["main_process_cpu_s"]
        print(
            f"{item['round']:>5} {item['workers']:>7} {where:>6} "
            f"{dns_result['queries_per_second']:>8.0f} {dns_result['latency_p99_ms']:>7.2f} "
            f"{dns_result['latency_max_ms']:>7.1f} {dns_result['server_cpu_share']:>6.0%} "
            f"{dns_result['queries_per_cpu_second']:>8.0f} {item['fodns_over_knot']:>6.3f} "
            f"{dns_result['server_core_other_s']:>7.2f} {item['checks_per_second']:>8.0f} "
            f"{item['checks_failed']:>6.0f} {item['check_ms_mean'] or 0:>8.2f} "
            f"{item['check_process_cpu_s']:>9.2f} "
            f"{item['check_process_cpu_ms_per_check'] or 0:>9.3f} "
            f"{main_cpu if main_cpu is not None else '-':>10}"
        )
    print(
        "checks: no, or the check process's CPU (server: left on CPU 0 with DNS; other: "
        "moved to CPU 1); chk: the check process; main (workers > 1): the API process"
    )
    for knot in cost["knot"]:
        print(
            f"Knot: {knot['queries_per_cpu_second']:.0f} q/CPU-s, "
            f"{knot['queries_per_second']:.0f} QPS"
        )
    for row in cost["summary"]:
        print(
            f"workers {row['workers']}, check process on the {row['check_cpu']} CPU: "
            f"fodns/Knot without checks {row['median_without']:.3f}, with checks "
            f"{row['median_with']:.3f} (medians): {row['change_percent']:+.1f}% (by round: "
            f"{', '.join(f'{p:+.1f}%' for p in row['change_percent_by_round'])}); check "
            f"process CPU s {row['check_process_cpu_s']}, checks/s {row['checks_per_second']}"
        )


# --- 2. detection -----------------------------------------------------------------


class GroupProbe:
    """Asks for each group's name from SOCKETS UDP sockets with distinct source ports
    (so SO_REUSEPORT spreads them over the workers) and notes when each socket's
    answer holds the address expected. Queries are pre-built and replies read as bytes:
    the prober must not take the CPU fodns needs to check and switch."""

    def __init__(self, port: int, names: list[str]) -> None:
        self.port = port
        self.queries = [dns.message.make_query(name, "A").to_wire() for name in names]
        self.sockets = []
        for _ in range(SOCKETS):
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sock.bind(("127.0.0.1", 0))
            self.sockets.append(sock)
        self._sent = 0

    def ask(
        self, expected: dict[int, bytes], confirmed: dict[int, set[int]], wait: float = 0.25
    ) -> dict[int, float]:
        """One round: each group in `expected` is asked from every socket that has not
        yet seen its expected address (`confirmed[group]`, updated here); the groups
        now confirmed by every socket, with the time (epoch) the last one did."""
        outstanding: dict[int, dict[int, int]] = {}  # socket -> query id -> group
        for index, sock in enumerate(self.sockets):
            for group in expected:
                if index in confirmed.setdefault(group, set()):
                    continue
                self._sent += 1
                query_id = self._sent % 65536
                sock.sendto(
                    query_id.to_bytes(2, "big") + self.queries[group][2:], ("127.0.0.1", self.port)
                )
                outstanding.setdefault(index, {})[query_id] = group
        deadline = time.monotonic() + wait
        done: dict[int, float] = {}
        for index, waiting in outstanding.items():
            sock = self.sockets[index]
            while waiting and (left := deadline - time.monotonic()) > 0:
                sock.settimeout(left)
                try:
                    reply = sock.recv(4096)
                except TimeoutError:
                    break
                # A late reply to an earlier round's query has an ID not waited for.
                group = waiting.pop(int.from_bytes(reply[:2], "big"), -1)
                if group >= 0 and expected[group] in answer_addresses(reply):
                    confirmed[group].add(index)
                    if len(confirmed[group]) == SOCKETS:
                        done[group] = time.time()
        return done

    def wait_all(self, expected: dict[int, bytes], timeout: float) -> bool:
        """Whether every group's answer is the expected address on every socket."""
        confirmed: dict[int, set[int]] = {}
        deadline = time.monotonic() + timeout
        pending = dict(expected)
        while pending and time.monotonic() < deadline:
            for group in self.ask(pending, confirmed):
                del pending[group]
            if pending:
                time.sleep(0.05)
        return not pending

    def close(self) -> None:
        for sock in self.sockets:
            sock.close()


def answer_addresses(reply: bytes) -> list[bytes]:
    """The A records' data in a reply's answer section, read as bytes (RFC 1035 §4.1)."""
    if len(reply) < 12 or reply[3] & 0x0F:
        return []
    count = int.from_bytes(reply[6:8], "big")
    offset = groups.skip_name(reply, 12) + 4
    found = []
    for _ in range(count):
        offset = groups.skip_name(reply, offset)
        length = int.from_bytes(reply[offset + 8 : offset + 10], "big")
        if reply[offset : offset + 2] == b"\x00\x01":
            found.append(reply[offset + 10 : offset + 10 + length])
        offset += 10 + length
    return found


def epoch_of(at: str) -> float:
    return datetime.fromisoformat(at.replace("Z", "+00:00")).timestamp()


def read_events(database: Path, after_seq: int) -> list[tuple[int, float, str, str, str, Any]]:
    """(seq, at, action, group label, app, after) of the health events and switches
    after `after_seq`, read from the store while fodns runs (WAL lets a reader in)."""
    with contextlib.closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as db:
        rows = db.execute(
            "SELECT seq, at, action, group_label, app, after FROM events WHERE seq > ? "
            "AND action IN ('health_changed', 'group_switched') ORDER BY seq",
            [after_seq],
        ).fetchall()
    return [
        (seq, epoch_of(at), action, label or "", app or "", json.loads(after) if after else None)
        for seq, at, action, label, app, after in rows
    ]


def last_seq(database: Path) -> int:
    with contextlib.closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as db:
        return int(db.execute("SELECT COALESCE(MAX(seq), 0) FROM events").fetchone()[0])


def measure_detection(args: argparse.Namespace) -> dict[str, Any]:
    rng = random.Random(args.seed)
    count = args.groups
    primaries = loopback_addresses(count, 96)
    backups = loopback_addresses(count, 97)
    sides = {"primary": primaries, "backup": backups}
    web_servers = [[address] for pair in zip(primaries, backups, strict=True) for address in pair]
    port = free_port_on(primaries[0])
    check = check_json(
        "http", port, args.interval, fall=args.fall, rise=args.rise, timeout=args.timeout
    )
    poll_every = min(0.25, max(0.05, args.interval / 20))
    samples: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="fodns-health-detect-") as temporary:
        directory = Path(temporary)
        database = directory / "fodns.db"
        config = groups.write_config(directory, 2)
        labels = fill_store(database, DETECTION_ZONE, web_servers, check, max_auto_switches=100)
        names = [f"{label}.{DETECTION_ZONE}" for label in labels]
        # The servers checked start while fodns does (both take a while); fodns's
        # first checks may fail, and every app must be up before a round begins.
        targets = Targets(primaries + backups, port)
        server = None
        probe = None
        try:
            server = groups.Server(config)
            targets.wait_ready()
            probe = GroupProbe(server.dns_port, names)
            for turn in range(args.detection_rounds):
                wait_all_up(server.api_port, 2 * count)
                # The side each group is on, as fodns says (nothing but the stops
                # below should move a group, but a round must not assume it).
                live = [active_side(server, label) for label in labels]
                before = {g: socket.inet_aton(sides[live[g]][g]) for g in range(count)}
                if not probe.wait_all(before, 10.0):
                    raise RuntimeError(f"round {turn + 1}: not every group answered its live side")
                seq = last_seq(database)
                # Each group's server stops at a random moment within one interval, so
                # the stops fall at every phase of the checks' schedule.
                began = time.time() + poll_every
                stop_at = {g: began + rng.uniform(0, args.interval) for g in range(count)}
                other = {g: "backup" if live[g] == "primary" else "primary" for g in range(count)}
                after = {g: socket.inet_aton(sides[other[g]][g]) for g in range(count)}
                stopped: dict[int, float] = {}
                served: dict[int, float] = {}
                confirmed: dict[int, set[int]] = {}
                deadline = (
                    began
                    + args.interval
                    + args.fall * (args.interval + CHECKER_TICK)
                    + args.timeout
                    + 10.0
                )
                while len(served) < count and time.time() < deadline:
                    tick = time.monotonic()
                    due = [g for g, at in stop_at.items() if at <= time.time() and g not in stopped]
                    if due:
                        closed = targets.stop([sides[live[g]][g] for g in due])
                        stopped.update({g: closed[sides[live[g]][g]] for g in due})
                    waiting = {g: after[g] for g in stopped if g not in served}
                    if waiting:
                        served.update(probe.ask(waiting, confirmed))
                    time.sleep(max(0.0, poll_every - (time.monotonic() - tick)))
                events = read_events(database, seq)
                for g in range(count):
                    # fill_store made app 2g the primary of group g, 2g + 1 its backup.
                    app = f"app-{2 * g if live[g] == 'primary' else 2 * g + 1:05d}"
                    samples.append(
                        detection_sample(
                            turn + 1, labels[g], app, stopped.get(g), served.get(g), events
                        )
                    )
                targets.start([sides[live[g]][g] for g in stopped])
                times = [s["stop_to_dns_s"] for s in samples[-count:] if s["stop_to_dns_s"]]
                print(
                    f"detection round {turn + 1}: {len(served)} of {count} groups answer "
                    f"the other side, stop -> DNS median {statistics.median(times or [0]):.2f} s",
                    flush=True,
                )
        finally:
            if probe is not None:
                probe.close()
            if server is not None:
                server.stop()
            targets.close()
    return {
        "groups": count,
        "workers": 2,
        "rounds": args.detection_rounds,
        "check": check,
        "poll_every_s": poll_every,
        "sockets_per_group": SOCKETS,
        "summary": detection_summary(samples, args),
        "samples": samples,
    }


def active_side(server: groups.Server, label: str) -> str:
    group = server.api("GET", f"/v1/groups/{label}")
    assert isinstance(group, dict)
    return str(group["active"])


def detection_sample(
    turn: int,
    label: str,
    app: str,
    stopped: float | None,
    served: float | None,
    events: list[tuple[int, float, str, str, str, Any]],
) -> dict[str, Any]:
    """One group's timeline in one round, in seconds from the stop of its live server."""
    down = next(
        (
            at
            for _, at, action, _, name, after in events
            if action == "health_changed" and name == app and (after or {}).get("state") == "down"
        ),
        None,
    )
    switched = next(
        (
            at
            for _, at, action, group, _, _ in events
            if action == "group_switched" and group == label
        ),
        None,
    )

    def since_stop(at: float | None) -> float | None:
        return None if at is None or stopped is None else round(at - stopped, 3)

    return {
        "round": turn,
        "group": label,
        "stopped_app": app,
        "stop_to_app_down_s": since_stop(down),
        "stop_to_switched_s": since_stop(switched),
        "stop_to_dns_s": since_stop(served),
        "switched_to_dns_s": None
        if switched is None or served is None
        else round(served - switched, 3),
    }


def distribution(values: list[float]) -> dict[str, float | int]:
    ordered = sorted(values)
    if not ordered:
        return {"count": 0}
    return {
        "count": len(ordered),
        "min": round(ordered[0], 3),
        "p50": round(groups.percentile(ordered, 0.5), 3),
        "p99": round(groups.percentile(ordered, 0.99), 3),
        "max": round(ordered[-1], 3),
    }


def detection_summary(samples: list[dict[str, Any]], args: argparse.Namespace) -> dict[str, Any]:
    def column(key: str) -> list[float]:
        return [s[key] for s in samples if s[key] is not None]

    # A stopped server is found after `fall` failed checks in a row: the first comes
    # 0 to 1 interval after the stop, the others an interval apart, each round up to
    # a tick late. So the app is down (fall - 1) x interval .. fall x (interval +
    # tick) after the stop; the switch and DNS serving it come after that. (A server
    # that drops packets instead of refusing would add the check's timeout to the
    # last check; a closed socket is refused at once.)
    low = (args.fall - 1) * args.interval
    high = args.fall * (args.interval + CHECKER_TICK)
    down = column("stop_to_app_down_s")
    return {
        "fall_x_interval_s": args.fall * args.interval,
        "app_down_window_s": [low, high],
        "stop_to_app_down_s": distribution(down),
        "stop_to_switched_s": distribution(column("stop_to_switched_s")),
        "switched_to_dns_s": distribution(column("switched_to_dns_s")),
        "stop_to_dns_s": distribution(column("stop_to_dns_s")),
        "app_down_within_window": sum(low <= value <= high for value in down),
        "not_switched": sum(s["stop_to_dns_s"] is None for s in samples),
    }


def print_detection(detection: dict[str, Any]) -> None:
    summary = detection["summary"]
    check = detection["check"]
    print(
        f"\nDetection: {detection['groups']} groups x {detection['rounds']} rounds, "
        f"{detection['workers']} workers, interval {check['interval']:g} s, fall {check['fall']}, "
        f"rise {check['rise']}, timeout {check['timeout']:g} s; DNS asked every "
        f"{detection['poll_every_s']:g} s from {detection['sockets_per_group']} sockets"
    )
    print(f"{'seconds from the stop':<30} {'count':>5} {'min':>7} {'p50':>7} {'p99':>7} {'max':>7}")
    for key, title in (
        ("stop_to_app_down_s", "app down (health_changed)"),
        ("stop_to_switched_s", "group switched (event)"),
        ("stop_to_dns_s", "every socket answers the other"),
        ("switched_to_dns_s", "(switched -> DNS)"),
    ):
        row = summary[key]
        if row["count"]:
            print(
                f"{title:<30} {row['count']:>5} {row['min']:>7.3f} {row['p50']:>7.3f} "
                f"{row['p99']:>7.3f} {row['max']:>7.3f}"
            )
    low, high = summary["app_down_window_s"]
    print(
        f"fall x interval = {summary['fall_x_interval_s']:g} s; app down within "
        f"(fall - 1) x interval .. fall x (interval + {CHECKER_TICK:g} s tick) = {low:g}-{high:g} "
        f"s: {summary['app_down_within_window']} of {summary['stop_to_app_down_s']['count']}; "
        f"groups not switched: {summary['not_switched']}"
    )


# --- command line -------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=("both", "cost", "detection"), default="both")
    parser.add_argument("--out", type=Path, help="the JSON file (benchmarks/out/health.json)")
    cost = parser.add_argument_group("cost to DNS")
    cost.add_argument("--addresses", type=int, default=10_000, help="addresses checked")
    cost.add_argument("--per-app", type=int, default=4, help="addresses per app")
    cost.add_argument("--check-interval", type=float, default=10.0, help="seconds")
    cost.add_argument("--check-type", choices=("http", "tcp"), default="http")
    cost.add_argument(
        "--workers",
        type=int,
        nargs="+",
        default=[1],
        help="fodns DNS worker counts to measure (1: as `make bench`)",
    )
    cost.add_argument(
        "--check-cpu",
        choices=tuple(CHECK_CPUS),
        nargs="+",
        default=list(CHECK_CPUS),
        help="where the check process runs in the runs with checks: left on the server's "
        "CPU, or moved to the other (dnsperf's) CPU; each one given is a run per round",
    )
    cost.add_argument("--rounds", type=int, default=2, help="turns without and with checks")
    cost.add_argument(
        "--duration",
        type=int,
        default=20,
        help="seconds of dnsperf per run (default 20: two rounds of checks at 10 s)",
    )
    cost.add_argument("--outstanding", type=int, default=run.DEFAULT_OUTSTANDING)
    detection = parser.add_argument_group("detection")
    detection.add_argument("--groups", type=int, default=20)
    detection.add_argument("--interval", type=float, default=1.0, help="check interval, s")
    detection.add_argument("--fall", type=int, default=3)
    detection.add_argument("--rise", type=int, default=2)
    detection.add_argument(
        "--timeout", type=float, help="check timeout, s (default: the interval, at most 5)"
    )
    detection.add_argument("--detection-rounds", type=int, default=10)
    detection.add_argument("--seed", type=int, default=20261213, help="the stops' moments")
    args = parser.parse_args(argv)
    if args.timeout is None:
        args.timeout = min(5.0, args.interval)
    if not 1 <= args.groups <= 250:
        parser.error("--groups must be 1 to 250")
    if args.addresses < 2 * args.per_app or not 1 <= args.per_app <= 32:
        parser.error("--per-app must be 1 to 32, and --addresses at least two apps' worth")
    if min(args.rounds, args.detection_rounds, args.duration) < 1:
        parser.error("--rounds, --detection-rounds and --duration must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not run.FODNS_BIN.exists():
        print(f"{run.FODNS_BIN} not found: run `make` first", file=sys.stderr)
        return 2
    parts = ["cost", "detection"] if args.part == "both" else [args.part]
    reference: dict[str, Any] = {}
    if "cost" in parts:
        reference["cost"] = (
            f"the same fodns and store without checks, taking turns in this run; both "
            f"against {run.knot_version() or 'Knot DNS'} in the same round (fodns/Knot "
            "queries per server CPU-second, as `make bench`)"
        )
    if "detection" in parts:
        reference["detection"] = "none: absolute times, against fall x interval"
    record = provenance(reference, argv, __file__)
    print_report(record, file=sys.stderr)
    results: dict[str, Any] = {
        "provenance": record,
        "settings": vars(args) | {"out": str(args.out)},
    }
    if "cost" in parts:
        results["cost"] = measure_cost(args)
    if "detection" in parts:
        results["detection"] = measure_detection(args)
    path = args.out or run.OUT_DIR / "health.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2) + "\n")
    if "cost" in results:
        print_cost(results["cost"])
    if "detection" in results:
        print_detection(results["detection"])
    print()
    print_report(record)
    print(f"\nwritten: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
