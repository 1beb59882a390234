"""Fuzz fodns: a million random and mutated DNS queries over UDP and TCP, and mutated
admin API requests, against a real `fodns serve`; every reply must be well formed.

    .venv/bin/python benchmarks/fuzz.py [--seed N] [--count N] [--workers 1,2]
        [--max-seconds S] [--api-count N] [--clients N] [--tcp-share F]

For each `--workers` setting: start `fodns serve` (the example zone, a TSIG key,
transfers allowed to 127.0.0.1) on ports the OS picks, create apps and groups
through the API, then at once:

- DNS: `--clients` processes send `--count` packets in all, `--tcp-share` of
  them over TCP. Packets are random bytes, valid queries (many types and
  classes, EDNS with options, TSIG-signed, compression pointers, odd counts and
  opcodes), the same queries mutated (bits, bytes, cuts, additions, splices),
  and a walk of every single-bit flip and a few byte values at every offset of
  every valid query. UDP: each packet is followed by a known query (the
  sentinel), so a reply that is missing or extra is seen without waiting for a
  timeout. TCP: several connections at once, each a pipeline of framed
  messages, some with wrong lengths and written in pieces.
- API: `--api-count` requests to POST /v1/apps, POST /v1/groups, PATCH apps
  and groups, and switches: valid bodies, the same bodies mutated, random JSON
  with hostile values (deep nesting, huge numbers, lone surrogates), bytes that
  are not UTF-8, odd headers (a non-UTF-8 Authorization among them).
- A probe asks for a group every 50 ms over UDP and every second over TCP.

Every reply must parse with dnspython, have QR set, the query's ID and opcode,
RA clear, a sensible rcode, the query's question when it has one, and fit the
UDP size; a query without a header or with QR set gets no reply. Every API
answer must be JSON with a 2xx or 4xx status. Afterwards the server and its
workers must be the same processes, and its log must hold no errors.

Results: benchmarks/out/fuzz.json. Loopback only; every loop is bounded by
count and by time. Exit status 1 if anything was found.
"""

from __future__ import annotations

import argparse
import collections
import concurrent.futures
import json
import multiprocessing
import os
import re
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import dns.exception
import dns.message
import dns.query
import dns.rcode
from fuzz_api import api_fuzz, root_causes
from fuzz_dns import (
    FINDING_EXAMPLES,
    ORIGIN,
    TSIG_NAME,
    TSIG_SECRET,
    UDP_PAYLOAD,
    ClientJob,
    Findings,
    build_corpus,
    run_client,
)
from groups import TOKEN, Server
from provenance import print_report, provenance
from run import fodns_revision, machine_info

from fodns.model import WEB_HEAD_MAX

REPOSITORY = Path(__file__).resolve().parent.parent
ZONE = REPOSITORY / "zones" / "fo.example.net.zone"
SEED = 20261210


# ---- the server -----------------------------------------------------------------------


def write_fuzz_config(directory: Path, workers: int) -> Path:
    """The example zone with a TSIG key and transfers allowed to loopback, so that
    signed queries and AXFR/IXFR reach the code that handles them."""
    config = directory / f"fuzz-{workers}.toml"
    config.write_text(
        f'[dns]\nlisten = ["127.0.0.1:0"]\nworkers = {workers}\nudp_payload = {UDP_PAYLOAD}\n'
        f'[api]\nlisten = "127.0.0.1:0"\n'
        f'[store]\npath = "{directory / f"fuzz-{workers}.db"}"\n'
        f'[[zones]]\nname = "fo.example.net"\nfile = "{ZONE}"\n'
        'allow_transfer = [{ address = "127.0.0.1/32" }]\n'
        f'[tsig.{TSIG_NAME}]\nalgorithm = "hmac-sha256"\nsecret = "{TSIG_SECRET}"\n'
    )
    return config


def child_pids(pid: int) -> list[int]:
    """The DNS worker processes of `pid` (multiprocessing's resource tracker left out)."""
    children = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            parent = int((entry / "stat").read_text().rpartition(")")[2].split()[1])
            command = (entry / "cmdline").read_bytes()
        except (OSError, IndexError):
            continue
        if parent == pid and b"resource_tracker" not in command:
            children.append(int(entry.name))
    return sorted(children)


APPS: list[dict[str, Any]] = [
    {"name": "fz-v4", "web_servers": ["192.0.2.1", "192.0.2.2"]},
    {"name": "fz-mixed", "web_servers": ["2001:db8::1", "192.0.2.3"]},
    {"name": "fz-lb-host", "load_balancer": ["lb.example.com"]},
    {"name": "fz-lb-ips", "load_balancer": ["198.51.100.1"], "web_servers": ["192.0.2.9"]},
    # Replies too big for 512 bytes: the truncation path. The API takes at most
    # WEB_HEAD_MAX (32) addresses, the most that fit in 1232 bytes, so none is bigger.
    {"name": "fz-many-v4", "web_servers": [f"10.0.0.{i}" for i in range(1, WEB_HEAD_MAX + 1)]},
    {"name": "fz-many-v6", "web_servers": [f"2001:db8::{i:x}" for i in range(1, WEB_HEAD_MAX + 1)]},
]
GROUPS: list[dict[str, Any]] = [
    {"label": "fz-both", "primary": "fz-v4", "backup": "fz-mixed"},
    {"label": "fz-lb", "primary": "fz-lb-host", "backup": "fz-lb-ips"},
    {"label": "fz-big", "primary": "fz-many-v4", "backup": "fz-many-v6"},
    {"label": "fz-primary-only", "primary": "fz-v4"},
    {"label": "fz-empty"},
    {"primary": "fz-mixed", "backup": "fz-v4"},  # a generated NNN-NNN-NNN label
]


def create_groups(server: Server) -> list[str]:
    """The apps and groups above, one generated group switched to its backup; the labels."""
    for app in APPS:
        server.api("POST", "/v1/apps", app)
    labels = []
    for group in GROUPS:
        created = server.api("POST", "/v1/groups", group)
        labels.append(created["label"])  # type: ignore[index]
    server.api("POST", f"/v1/groups/{labels[-1]}/switch", {"to": "backup"})
    return labels


# ---- DNS keeps answering: a probe beside the fuzzers ---------------------------------


def probe_dns(port: int, label: str, stop: threading.Event, results: dict[str, Any]) -> None:
    """A group over UDP every 50 ms and over TCP every second, until `stop` is set."""
    query = dns.message.make_query(f"{label}.{ORIGIN}", "A")
    times_ms: dict[str, list[float]] = {"udp": [], "tcp": []}
    failures: list[str] = []
    began = time.monotonic()
    next_tcp = began
    while not stop.wait(0.05):
        transports = ["udp"]
        if time.monotonic() >= next_tcp:
            next_tcp += 1.0
            transports.append("tcp")
        for transport in transports:
            sent = time.monotonic()
            try:
                ask = dns.query.udp if transport == "udp" else dns.query.tcp
                reply = ask(query, "127.0.0.1", port=port, timeout=2.0)
                if reply.rcode() != dns.rcode.NOERROR:
                    raise ValueError(dns.rcode.to_text(reply.rcode()))
                times_ms[transport].append((time.monotonic() - sent) * 1000)
            except (dns.exception.DNSException, OSError, ValueError) as exc:
                failures.append(f"{transport} {exc!r} at {sent - began:.0f} s")
    results.update(failures=len(failures), failure_list=failures[:20])
    for transport, values in times_ms.items():
        values.sort()
        results[f"{transport}_answered"] = len(values)
        if values:
            results[f"{transport}_ms_p50"] = round(values[len(values) // 2], 1)
            results[f"{transport}_ms_p99"] = round(values[int(len(values) * 0.99)], 1)
            results[f"{transport}_ms_max"] = round(values[-1], 1)


# ---- the server's log -------------------------------------------------------------------


def scan_log(path: Path) -> dict[str, Any]:
    """Errors in the server's log: JSON events at level error or above, query_failed,
    transfer_failed, worker_died, and any lines that are not JSON (tracebacks that
    libraries log through the standard logging module) grouped into blocks."""
    events: collections.Counter[str] = collections.Counter()
    examples: dict[str, list[str]] = collections.defaultdict(list)
    blocks: collections.Counter[str] = collections.Counter()
    block_examples: dict[str, str] = {}
    block: list[str] = []
    # aiohttp's traceback for each request whose handler raised (it then answers 500).
    request_tracebacks: list[str] = []

    def end_block() -> None:
        if block:
            if block[0].startswith("Error handling request"):
                request_tracebacks.append("\n".join(block))
            exception = next(
                (line for line in reversed(block) if line and not line.startswith(" ")), block[-1]
            )
            # One key per kind of exception: positions and byte values vary.
            general = re.sub(r"0x[0-9a-f]+|\d+", "N", exception[:300])
            key = f"{block[0][:60]} ... {general}"
            blocks[key] += 1
            block_examples.setdefault(key, "\n".join(block[-16:]))
            block.clear()

    for line in path.read_text(errors="replace").splitlines():
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            event = None
        if not isinstance(event, dict):
            if line.startswith("Error handling request"):
                end_block()  # tracebacks can follow one another with no JSON between
            block.append(line)
            continue
        end_block()
        name = str(event.get("event"))
        bad = event.get("level") in ("error", "critical", "exception") or name in (
            "query_failed",
            "transfer_failed",
            "worker_died",
        )
        if bad or "exception" in event:
            events[name] += 1
            if len(examples[name]) < FINDING_EXAMPLES:
                examples[name].append(line[:3000])
    end_block()
    return {
        "error_events": dict(events),
        "error_examples": dict(examples),
        "non_json_blocks": dict(blocks),
        "non_json_examples": block_examples,
        "request_tracebacks": request_tracebacks,
    }


# ---- one run against one server --------------------------------------------------------


def fuzz_server(workers: int, args: argparse.Namespace, directory: Path) -> dict[str, Any]:
    server = Server(write_fuzz_config(directory, workers))
    try:
        labels = create_groups(server)
        corpus = build_corpus(labels)
        began = time.monotonic()
        workers_before = child_pids(server.process.pid)
        deadline = time.monotonic() + args.max_seconds
        tcp_count = round(args.count * args.tcp_share)
        udp_clients = args.clients - (1 if tcp_count else 0) if tcp_count < args.count else 0
        jobs = [
            ClientJob(
                "udp",
                server.dns_port,
                corpus,
                args.seed * 1000 + workers * 100 + index,
                (args.count - tcp_count) // udp_clients
                + (1 if index < (args.count - tcp_count) % udp_clients else 0),
                deadline,
                index,
                args.clients,
            )
            for index in range(udp_clients)
        ]
        if tcp_count:
            jobs.append(
                ClientJob(
                    "tcp",
                    server.dns_port,
                    corpus,
                    args.seed * 1000 + workers * 100 + 99,
                    tcp_count,
                    deadline,
                    args.clients - 1,  # the same share of the walk whatever --tcp-share is
                    args.clients,
                )
            )
        print(
            f"workers={workers}: fodns on 127.0.0.1:{server.dns_port} (API {server.api_port}), "
            f"{len(corpus)} corpus queries, {args.count:,} packets "
            f"({args.count - tcp_count:,} UDP in {udp_clients} processes, {tcp_count:,} TCP), "
            f"{args.api_count:,} API requests",
            flush=True,
        )
        stop_probe = threading.Event()
        probe: dict[str, Any] = {}
        prober = threading.Thread(
            target=probe_dns, args=(server.dns_port, labels[0], stop_probe, probe), daemon=True
        )
        prober.start()
        context = multiprocessing.get_context("spawn")
        with concurrent.futures.ProcessPoolExecutor(len(jobs), mp_context=context) as pool:
            futures = [pool.submit(run_client, job) for job in jobs]
            api = api_fuzz(
                server.api_port,
                TOKEN,
                args.seed * 1000 + workers,
                args.api_count,
                deadline,
                [app["name"] for app in APPS],
                labels,
            )
            print(f"workers={workers}: API done: {api['requests']:,} requests", flush=True)
            results = [future.result(timeout=args.max_seconds + 120) for future in futures]
        dns_seconds = time.monotonic() - began
        stop_probe.set()
        prober.join(10)
        workers_after = child_pids(server.process.pid)
        alive = server.process.poll() is None
        dns_result = combine(results)
    finally:
        server.stop()
    log = scan_log(server.log_path)
    api["root_causes"] = root_causes(api.pop("problems"), log.pop("request_tracebacks"))
    total = sum(dns_result[t]["sent_total"] for t in ("udp", "tcp") if t in dns_result)
    return {
        "workers": workers,
        "dns_port": server.dns_port,
        "seconds": round(dns_seconds, 1),
        "packets_asked": args.count,
        "packets_sent": total,
        "packets_per_second": round(total / dns_seconds),
        "corpus_queries": len(corpus),
        "dns": dns_result,
        "api": api,
        "probe": probe,
        "server_alive_at_end": alive,
        "server_exit_status": server.process.returncode,
        "worker_pids_before": workers_before,
        "worker_pids_after": workers_after,
        "log": log,
    }


def combine(results: list[dict[str, Any]]) -> dict[str, Any]:
    combined: dict[str, Any] = {}
    for result in results:
        for transport, tally in result.items():
            into = combined.setdefault(
                transport,
                {
                    "clients": 0,
                    "sent": collections.Counter(),
                    "rcodes": collections.Counter(),
                    "replies_checked": 0,
                    "no_reply_expected": 0,
                    "lost": 0,
                    "findings": Findings(),
                },
            )
            into["clients"] += 1
            into["client_seconds"] = max(into.get("client_seconds", 0), round(tally["seconds"], 1))
            into["sent"].update(tally["sent"])
            into["rcodes"].update(tally["rcodes"])
            for key in ("replies_checked", "no_reply_expected", "lost"):
                into[key] += tally[key]
            into["findings"].merge(tally["findings"])
    for into in combined.values():
        into["sent_total"] = sum(
            count for kind, count in into["sent"].items() if kind not in ("transfer_messages",)
        )
        into["sent"] = dict(into["sent"])
        into["rcodes"] = dict(into["rcodes"])
        into["findings"] = into["findings"].to_json()
    return combined


def run_findings(run: dict[str, Any]) -> list[str]:
    """One line per problem of a run, for the summary and the exit status."""
    lines = []
    if run["packets_sent"] < run["packets_asked"]:
        lines.append(f"stopped at --max-seconds after {run['packets_sent']:,} packets")
    for transport in ("udp", "tcp"):
        result = run["dns"].get(transport, {})
        for kind, count in result.get("findings", {}).get("counts", {}).items():
            lines.append(f"DNS {kind}: {count}")
        if result.get("lost"):
            lines.append(f"DNS {transport}: {result['lost']} packets lost (no sentinel answer)")
    for cause in run["api"]["root_causes"]:
        routes = ", ".join(sorted(cause["routes"]))
        lines.append(f"API {cause['count']}x {cause['cause']} ({routes})")
    if run["probe"].get("failures"):
        lines.append(f"probe: {run['probe']['failures']} failed DNS probes")
    if not run["server_alive_at_end"]:
        lines.append("the server died")
    if run["worker_pids_before"] != run["worker_pids_after"]:
        lines.append(
            f"worker PIDs changed: {run['worker_pids_before']} -> {run['worker_pids_after']}"
        )
    if run["server_exit_status"] not in (0, None):
        lines.append(f"server exit status {run['server_exit_status']} on SIGTERM")
    for event, count in run["log"]["error_events"].items():
        lines.append(f"log: {count} {event} events")
    for block, count in run["log"]["non_json_blocks"].items():
        if not block.startswith("Error handling request"):  # those are the API's, above
            lines.append(f"log: {count}x {block}")
    return lines


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=SEED, help=f"default {SEED}")
    parser.add_argument(
        "--count", type=int, default=1_000_000, help="DNS packets per server (default 1,000,000)"
    )
    parser.add_argument(
        "--workers", default="1,2", help="fodns [dns] workers settings to run, e.g. 1,2 (default)"
    )
    parser.add_argument(
        "--max-seconds",
        type=float,
        default=1800.0,
        help="time bound per server; fuzzing stops there even if --count is not reached",
    )
    parser.add_argument(
        "--api-count", type=int, default=10_000, help="API requests per server (default 10,000)"
    )
    parser.add_argument(
        "--clients", type=int, default=3, help="client processes (one of them TCP; default 3)"
    )
    parser.add_argument(
        "--tcp-share", type=float, default=0.2, help="share of packets sent over TCP (default 0.2)"
    )
    args = parser.parse_args(argv)
    args.workers_list = [int(w) for w in args.workers.split(",")]
    if args.count < 1 or args.clients < 2 or not 0 <= args.tcp_share <= 1:
        parser.error("--count must be positive, --clients at least 2, --tcp-share in [0, 1]")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    began = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    machine = machine_info()
    record = provenance(
        "none: a correctness run; every reply is checked against the protocol's rules "
        "(counts and findings, no timing compared with anything)",
        argv,
        __file__,
    )
    print_report(record)
    runs = []
    with tempfile.TemporaryDirectory(prefix="fodns-fuzz-") as temporary:
        for workers in args.workers_list:
            run = fuzz_server(workers, args, Path(temporary))
            runs.append(run)
            problems = run_findings(run)
            print(
                f"workers={workers}: {run['packets_sent']:,} packets in {run['seconds']} s "
                f"({run['packets_per_second']:,}/s), {run['api']['requests']:,} API requests: "
                + (f"{len(problems)} kinds of findings" if problems else "no findings"),
                flush=True,
            )
            for line in problems:
                print(f"  {line}", flush=True)
    results = {
        "provenance": record,
        "started_at": began,
        "command": " ".join([sys.executable, *sys.argv]),
        "seed": args.seed,
        "fodns_revision": fodns_revision(),
        "machine": machine,
        "load_average_at_end": os.getloadavg(),
        "runs": runs,
        "findings": {str(run["workers"]): run_findings(run) for run in runs},
    }
    output = REPOSITORY / "benchmarks" / "out"
    output.mkdir(parents=True, exist_ok=True)
    (output / "fuzz.json").write_text(json.dumps(results, indent=2, default=str) + "\n")
    print(f"written: {output / 'fuzz.json'}")
    return 1 if any(results["findings"].values()) else 0


if __name__ == "__main__":
    sys.exit(main())
