"""Soak fodns: DNS load at 80% of its measured capacity for ten minutes, a group switch
every second, and the resident memory of every fodns process sampled throughout.

    nice .venv/bin/python benchmarks/soak.py [--duration 600] [--workers 2]
        [--load-share 0.8] [--capacity-seconds 15] [--sample-every 5] [--warm-up 30]

1. Starts `fodns serve` (the example zone, `--workers` DNS workers) on loopback ports
   the OS picks, and creates 2 apps and 20 groups through the API.
2. Capacity: dnsperf without a rate limit for `--capacity-seconds` (4 client
   sockets, so that SO_REUSEPORT spreads them over the workers; 100 queries in
   flight, EDNS on): the answered queries per second.
3. Soak: dnsperf limited (`-Q`) to `--load-share` of that for `--duration` seconds,
   while a thread switches one group per second through the API (round robin over
   the 20, each to its other side) and another reads VmRSS of the main process and
   of each worker from /proc every `--sample-every` seconds.
4. Afterwards: each group answers the side it was last switched to.

Reported (and written to benchmarks/out/soak.json): the capacity; queries sent,
answered and lost, and dnsperf's per-interval rate; switches made and failed, with
the API's latency; per process, resident memory at the end of the warm-up, at the
end and at most, and whether every sample after the warm-up stayed within 10% of
the first; the worker PIDs before and after; errors in fodns's log; the load
average of the machine. Exit status 1 if the memory was not flat or anything failed.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
from pathlib import Path
from typing import Any

import dns.message
import dns.query
from fuzz import child_pids
from groups import Server, percentile, write_config
from provenance import print_report, provenance
from run import SUMMARY_LINE, fodns_revision, machine_info

GROUP_COUNT = 20
CAPACITY_CLIENTS = 4  # dnsperf sockets: different source ports reach different workers
OUTSTANDING = 100
QUERY_TIMEOUT_S = 2
RSS_TOLERANCE = 0.10
APPS = [
    {"name": "soak-eu", "web_servers": ["192.0.2.10", "192.0.2.11"]},
    {"name": "soak-us", "web_servers": ["198.51.100.7", "2001:db8::7"]},
]
ADDRESS_OF_SIDE = {"primary": "192.0.2.10", "backup": "198.51.100.7"}


def query_lines(labels: list[str]) -> list[str]:
    """dnsperf's input: mostly the groups (the names that move), some static names, a
    NODATA, an NXDOMAIN and a wildcard, as a resolver in front of users would ask."""
    lines = [f"{label}.fo.example.net {qtype}" for label in labels for qtype in ("A", "A", "AAAA")]
    lines += [
        "www.fo.example.net A",
        "www.fo.example.net AAAA",
        "status.fo.example.net A",
        "fo.example.net SOA",
        "fo.example.net NS",
        "mail.fo.example.net TXT",
        "no-such-name.fo.example.net A",
        "anything.preview.fo.example.net A",
    ]
    return lines


def dnsperf(
    port: int, query_file: Path, seconds: int, rate: int | None, transcript: Path
) -> dict[str, str]:
    """One dnsperf run; its closing statistics, and per-second rates in the transcript."""
    executable = shutil.which("dnsperf")
    if executable is None:
        raise SystemExit("dnsperf is not installed (Debian package dnsperf)")
    command = [
        *(executable, "-s", "127.0.0.1", "-p", str(port), "-d", str(query_file)),
        *("-l", str(seconds), "-q", str(OUTSTANDING), "-t", str(QUERY_TIMEOUT_S), "-e"),
        *("-c", str(CAPACITY_CLIENTS), "-T", "1", "-S", "1"),
        *(("-Q", str(rate)) if rate else ()),
    ]
    with transcript.open("wb") as out:
        finished = subprocess.run(
            command, stdout=out, stderr=subprocess.STDOUT, timeout=seconds + 120, check=False
        )
    text = transcript.read_text(errors="replace")
    if finished.returncode != 0:
        raise SystemExit(f"dnsperf failed ({finished.returncode}):\n{text[-2000:]}")
    summary = {}
    for line in text.splitlines():
        if match := SUMMARY_LINE.match(line):
            summary[match[1]] = match[2]
    return summary


def number(summary: dict[str, str], key: str) -> float:
    # Values look like "750359 (100.00%)" or "0.000681 (min 0.000007, max 0.016688)".
    return float(summary[key].split()[0])


def interval_rates(transcript: Path) -> list[float]:
    """dnsperf -S 1 prints the rate of each second, e.g. "1733100000.123456: 41235.1"."""
    rates = []
    for line in transcript.read_text(errors="replace").splitlines():
        if match := re.match(r"^\d+\.\d+: ([\d.]+)$", line.strip()):
            rates.append(float(match[1]))
    return rates[1:-1]  # the first and last seconds are partial


def resident_kb(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


class Sampler(threading.Thread):
    """VmRSS of the main process and each worker every `every` seconds until stopped."""

    def __init__(self, main_pid: int, every: float) -> None:
        super().__init__(daemon=True)
        self.main_pid = main_pid
        self.every = every
        self.stop = threading.Event()
        self.samples: list[tuple[float, dict[str, int]]] = []
        self.began = time.monotonic()

    def sample(self) -> None:
        sizes = {}
        workers = child_pids(self.main_pid)
        for name, pid in [("main", self.main_pid)] + [
            (f"worker {index}", pid) for index, pid in enumerate(workers, 1)
        ]:
            size = resident_kb(pid)
            if size is not None:
                sizes[name] = size
        self.samples.append((time.monotonic() - self.began, sizes))

    def run(self) -> None:
        self.sample()
        while not self.stop.wait(self.every):
            self.sample()
        self.sample()


class Switcher(threading.Thread):
    """One switch per second through the API, round robin over the groups."""

    def __init__(self, server: Server, labels: list[str]) -> None:
        super().__init__(daemon=True)
        self.server = server
        self.labels = labels
        self.active = dict.fromkeys(labels, "primary")
        self.stop = threading.Event()
        self.latencies_ms: list[float] = []
        self.failures: list[str] = []

    def run(self) -> None:
        began = time.monotonic()
        count = 0
        while not self.stop.is_set():
            label = self.labels[count % len(self.labels)]
            side = "backup" if self.active[label] == "primary" else "primary"
            start = time.monotonic()
            try:
                self.server.api("POST", f"/v1/groups/{label}/switch", {"to": side})
                self.active[label] = side
                self.latencies_ms.append((time.monotonic() - start) * 1000)
            except (OSError, urllib.error.URLError, ValueError) as exc:
                self.failures.append(f"{label} -> {side}: {exc!r}")
            count += 1
            # On the second, whatever the last switch took: the rate stays one a second.
            self.stop.wait(max(0.0, began + count - time.monotonic()))


def rss_report(samples: list[tuple[float, dict[str, int]]], warm_up: float) -> dict[str, Any]:
    """Per process: MB after warm-up, at the end and at most; within 10% of the first?"""
    after = [(at, sizes) for at, sizes in samples if at >= warm_up] or samples[-1:]
    report: dict[str, Any] = {}
    for name in after[0][1]:
        series = [sizes[name] for _, sizes in after if name in sizes]
        start, end, peak, low = series[0], series[-1], max(series), min(series)
        report[name] = {
            "start_mb": round(start / 1024, 1),
            "end_mb": round(end / 1024, 1),
            "max_mb": round(peak / 1024, 1),
            "min_mb": round(low / 1024, 1),
            "change_at_end": f"{(end - start) / start:+.1%}",
            "within_10_percent": peak <= start * (1 + RSS_TOLERANCE)
            and low >= start * (1 - RSS_TOLERANCE),
        }
    return report


def final_answers(server: Server, active: dict[str, str]) -> list[str]:
    """Groups that do not answer the side they were last switched to."""
    wrong = []
    for label, side in active.items():
        reply = dns.query.udp(
            dns.message.make_query(f"{label}.fo.example.net", "A"),
            "127.0.0.1",
            port=server.dns_port,
            timeout=2,
        )
        addresses = {rdata.to_text() for rrset in reply.answer for rdata in rrset}
        if ADDRESS_OF_SIDE[side] not in addresses:
            wrong.append(f"{label}: {side} expected, answered {sorted(addresses)}")
    return wrong


def soak(args: argparse.Namespace, directory: Path) -> dict[str, Any]:
    server = Server(write_config(directory, args.workers))
    try:
        for app in APPS:
            server.api("POST", "/v1/apps", app)
        labels = [
            server.api("POST", "/v1/groups", {"primary": "soak-eu", "backup": "soak-us"})[
                "label"  # type: ignore[index]
            ]
            for _ in range(GROUP_COUNT)
        ]
        query_file = directory / "queries.txt"
        query_file.write_text("\n".join(query_lines(labels)) + "\n")
        workers_before = child_pids(server.process.pid)

        print(f"capacity: dnsperf for {args.capacity_seconds} s without a limit", flush=True)
        capacity_summary = dnsperf(
            server.dns_port, query_file, args.capacity_seconds, None, directory / "capacity.txt"
        )
        capacity = number(capacity_summary, "Queries per second")
        rate = int(capacity * args.load_share)
        print(
            f"capacity {capacity:,.0f} q/s; soak at {rate:,} q/s for {args.duration} s "
            "with a switch every second",
            flush=True,
        )

        load_before = os.getloadavg()
        sampler = Sampler(server.process.pid, args.sample_every)
        switcher = Switcher(server, labels)
        sampler.start()
        switcher.start()
        try:
            soak_summary = dnsperf(
                server.dns_port, query_file, args.duration, rate, directory / "soak.txt"
            )
        finally:
            switcher.stop.set()
            switcher.join(30)
            sampler.stop.set()
            sampler.join(30)
        load_after = os.getloadavg()
        rates = interval_rates(directory / "soak.txt")
        wrong = final_answers(server, switcher.active)
        workers_after = child_pids(server.process.pid)
        alive = server.process.poll() is None
    finally:
        server.stop()
    rss = rss_report(sampler.samples, args.warm_up)
    log_errors = [
        line
        for line in server.log_path.read_text(errors="replace").splitlines()
        if '"level": "error"' in line or "Traceback" in line
    ]
    return {
        "workers": args.workers,
        "groups": GROUP_COUNT,
        "capacity_qps": round(capacity),
        "capacity_lost": int(number(capacity_summary, "Queries lost")),
        "load_share": args.load_share,
        "target_qps": rate,
        "duration_s": args.duration,
        "queries_sent": int(number(soak_summary, "Queries sent")),
        "queries_answered": int(number(soak_summary, "Queries completed")),
        "queries_lost": int(number(soak_summary, "Queries lost")),
        "answered_qps": round(number(soak_summary, "Queries per second")),
        "response_codes": soak_summary.get("Response codes", ""),
        "latency_avg_ms": round(number(soak_summary, "Average Latency (s)") * 1000, 3),
        "interval_qps_min": round(min(rates)) if rates else None,
        "interval_qps_median": round(statistics.median(rates)) if rates else None,
        "switches": len(switcher.latencies_ms),
        "switches_failed": len(switcher.failures),
        "switch_failures": switcher.failures[:10],
        "switch_api_ms_p50": round(statistics.median(switcher.latencies_ms), 1)
        if switcher.latencies_ms
        else None,
        "switch_api_ms_p99": round(percentile(switcher.latencies_ms, 0.99), 1)
        if switcher.latencies_ms
        else None,
        "groups_answering_a_wrong_side_at_end": wrong,
        "rss_warm_up_s": args.warm_up,
        "rss_samples": len(sampler.samples),
        "rss": rss,
        "rss_flat_within_10_percent": all(p["within_10_percent"] for p in rss.values()),
        "rss_series_mb": [
            {"at_s": round(at), **{k: round(v / 1024, 1) for k, v in sizes.items()}}
            for at, sizes in sampler.samples
        ],
        "worker_pids_before": workers_before,
        "worker_pids_after": workers_after,
        "server_alive_at_end": alive,
        "server_log_errors": log_errors[:20],
        "load_average_before": load_before,
        "load_average_after": load_after,
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=600, help="seconds of soak (600)")
    parser.add_argument("--workers", type=int, default=2, help="fodns DNS workers (2)")
    parser.add_argument(
        "--load-share", type=float, default=0.8, help="share of measured capacity (0.8)"
    )
    parser.add_argument(
        "--capacity-seconds", type=int, default=15, help="length of the capacity run (15)"
    )
    parser.add_argument("--sample-every", type=float, default=5.0, help="RSS sample period (5 s)")
    parser.add_argument(
        "--warm-up", type=float, default=30.0, help="seconds before the RSS baseline (30)"
    )
    args = parser.parse_args(argv)
    if args.duration < 10 or not 0 < args.load_share <= 1 or args.warm_up >= args.duration:
        parser.error("--duration at least 10, --load-share in (0, 1], --warm-up below --duration")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    machine = machine_info()
    record = provenance(
        "fodns's own capacity, measured at the start of this same run (the soak holds "
        "--load-share of it); memory against its own first sample after --warm-up",
        argv,
        __file__,
    )
    print_report(record)
    with tempfile.TemporaryDirectory(prefix="fodns-soak-") as temporary:
        result = soak(args, Path(temporary))
    document = {
        "provenance": record,
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "command": " ".join([sys.executable, *sys.argv]),
        "niceness": os.nice(0),
        "fodns_revision": fodns_revision(),
        "machine": machine,
        **result,
    }
    output = Path(__file__).resolve().parent / "out"
    output.mkdir(parents=True, exist_ok=True)
    (output / "soak.json").write_text(json.dumps(document, indent=2) + "\n")
    summary = {
        k: v for k, v in document.items() if k not in ("rss_series_mb", "machine", "provenance")
    }
    print(json.dumps(summary, indent=2))
    ok = (
        result["rss_flat_within_10_percent"]
        and not result["switches_failed"]
        and not result["groups_answering_a_wrong_side_at_end"]
        and result["server_alive_at_end"]
        and result["worker_pids_before"] == result["worker_pids_after"]
        and not result["server_log_errors"]
    )
    print(f"written: {output / 'soak.json'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
