"""Switch to secondary: how long after the API acknowledges a switch do real Knot DNS
and NSD secondaries answer with the new address?

    .venv/bin/python benchmarks/secondaries.py [--switches 300]

fodns, knotd and nsd all run on 127.0.0.1 (ports the OS picks), the secondaries
configured with the blocks of docs/secondaries.md through tests/secondaries.py, and
fodns sending NOTIFY to both. One group is switched N times, one switch after
another. After each API reply, each secondary is asked for the group over UDP every
1 ms until it answers the new address (5 s at most per switch); the time from the
API's reply to that answer is the switch-to-secondary latency. A secondary that
misses 3 switches in a row is not waited for any more (its misses are counted).
Prints one JSON document and a line of text per secondary; the JSON also goes to
benchmarks/out/secondaries.json.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import math
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import dns.exception

REPOSITORY = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPOSITORY))

from provenance import code_state, print_report, provenance  # noqa: E402

from tests.secondaries import (  # noqa: E402
    SECRET,
    ZONE,
    KnotSecondary,
    NsdSecondary,
    Secondary,
    find_executable,
)
from tests.support import (  # noqa: E402  (the repository root must be on the path first)
    EXAMPLE_ZONE,
    FodnsProcess,
    api_request,
    start_fodns,
    write_config,
)

TOKEN = "benchmark-token-5d3e"
GROUP = f"shop.{ZONE}"
EU, US = "192.0.2.10", "198.51.100.7"
POLL_EVERY = 0.001
PER_SWITCH_LIMIT = 5.0
GIVE_UP_AFTER_MISSES = 3
OUT = REPOSITORY / "benchmarks" / "out" / "secondaries.json"


SLOW_SECONDS = 0.1


def answers(secondary: Secondary, address: str) -> bool:
    try:
        response = secondary.query(GROUP, "A", timeout=0.1)
    except (dns.exception.DNSException, OSError):
        return False
    return {rdata.to_text() for rrset in response.answer for rdata in rrset} == {address}


def served_after(secondary: Secondary, address: str, acknowledged: float) -> float | None:
    """Seconds from `acknowledged` until the secondary answers `address`, asking every
    1 ms; None after PER_SWITCH_LIMIT."""
    while (now := time.monotonic()) - acknowledged < PER_SWITCH_LIMIT:
        if answers(secondary, address):
            return time.monotonic() - acknowledged
        time.sleep(max(0.0, POLL_EVERY - (time.monotonic() - now)))
    return None


def percentile_ms(values: list[float], fraction: float) -> float | None:
    """Nearest-rank percentile, in milliseconds."""
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[max(0, math.ceil(len(ordered) * fraction) - 1)] * 1000, 2)


def post(primary: FodnsProcess, path: str, body: object) -> None:
    status, payload = api_request(primary, "POST", path, body, TOKEN)
    if status not in (200, 201):
        raise RuntimeError(f"{path}: {status} {payload}")


def version(command: list[str]) -> str:
    result = subprocess.run(command, capture_output=True, text=True, timeout=10)
    return (result.stdout or result.stderr).splitlines()[0].strip()


def run(switches: int, directory: Path) -> dict[str, Any]:
    secondaries: list[Secondary] = [
        KnotSecondary(directory / "knot"),
        NsdSecondary(directory / "nsd", tap=False),  # straight to fodns, nothing between
    ]
    targets = ", ".join(f'"127.0.0.1:{s.port}"' for s in secondaries)
    config = write_config(
        directory,
        [(ZONE, EXAMPLE_ZONE)],
        zone_extra=(
            f"notify = [{targets}]\n"
            'allow_transfer = [{ address = "127.0.0.1/32", key = "xfr" }]\n'
        ),
        extra=f'[tsig.xfr]\nalgorithm = "hmac-sha256"\nsecret = "{SECRET}"\n',
    )
    primary = start_fodns("--config", str(config), env={"FODNS_ADMIN_TOKEN": TOKEN})
    started: list[Secondary] = []
    try:
        for secondary in secondaries:
            secondary.start(primary.dns_port)
            started.append(secondary)
        for secondary in secondaries:
            if not secondary.wait_serial(1, timeout=10):
                raise RuntimeError(f"{secondary.name} did not load the zone")
        post(primary, "/v1/apps", {"name": "eu", "web_servers": [EU]})
        post(primary, "/v1/apps", {"name": "us", "web_servers": [US]})
        post(primary, "/v1/groups", {"label": "shop", "primary": "eu", "backup": "us"})
        served_group = {
            s.name: served_after(s, EU, time.monotonic()) is not None for s in secondaries
        }
        following = dict(served_group)
        latencies: dict[str, list[float]] = {s.name: [] for s in secondaries}
        # (switch number, ms) of each switch served later than SLOW_SECONDS: the outliers.
        slow: dict[str, list[tuple[int, float]]] = {s.name: [] for s in secondaries}
        misses = Counter[str]()
        api_seconds: list[float] = []
        with concurrent.futures.ThreadPoolExecutor(max_workers=len(secondaries)) as pool:
            for count in range(switches):
                side, address = ("backup", US) if count % 2 == 0 else ("primary", EU)
                requested = time.monotonic()
                post(primary, "/v1/groups/shop/switch", {"to": side})
                acknowledged = time.monotonic()
                api_seconds.append(acknowledged - requested)
                watched = [s for s in secondaries if following[s.name]]
                futures = {
                    s.name: pool.submit(served_after, s, address, acknowledged) for s in watched
                }
                for name, future in futures.items():
                    latency = future.result()
                    if latency is None:
                        misses[name] += 1
                        following[name] = misses[name] < GIVE_UP_AFTER_MISSES
                    else:
                        latencies[name].append(latency)
                        if latency > SLOW_SECONDS:
                            slow[name].append((count, round(latency * 1000, 1)))
                if not any(following.values()):
                    break
        styles = Counter(
            f"{e.get('type')}/{e.get('style')}" for e in primary.log_events("zone_transferred")
        )
        results: dict[str, dict[str, Any]] = {}
        for secondary in secondaries:
            values = latencies[secondary.name]
            results[secondary.name] = {
                "served_the_new_group": served_group[secondary.name],
                "served": len(values),
                "missed": misses[secondary.name],
                "followed_to_the_end": following[secondary.name],
                "p50_ms": percentile_ms(values, 0.50),
                "p99_ms": percentile_ms(values, 0.99),
                "max_ms": round(max(values) * 1000, 2) if values else None,
                "slow_switches": slow[secondary.name],
                "failures_logged": failures(secondary),
                "transfers_logged": Counter(kind for kind, _ in secondary.transfers())
                if isinstance(secondary, KnotSecondary)
                else None,
            }
        return {
            "switches": switches,
            "api_p50_ms": percentile_ms(api_seconds, 0.50),
            "api_p99_ms": percentile_ms(api_seconds, 0.99),
            "secondaries": results,
            "fodns_transfers_sent": dict(styles),
            "versions": {
                "knotd": version([find_executable("knotd"), "--version"]),
                "nsd": version([find_executable("nsd"), "-v"]),
                "python": platform.python_version(),
            },
            "machine": {"cpus": len(os.sched_getaffinity(0)), "kernel": platform.release()},
            "revision": fodns_revision(),
            "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
    finally:
        for secondary in started:
            secondary.stop()
        primary.stop()


def failures(secondary: Secondary) -> list[str]:
    """The distinct reasons the secondary logged for failing, in order of first sight:
    Knot's "failed (REASON)", or any other line that mentions a failure."""
    reasons: list[str] = []
    for line in secondary.log_text().splitlines():
        if "fail" not in line.lower():
            continue
        found = re.search(r"failed \(([^)]*)\)", line)
        reason = found[1] if found else line.split(": ", 1)[-1]
        if reason not in reasons:
            reasons.append(reason)
    return reasons


def fodns_revision() -> str:
    return str(code_state()["revision"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--switches", type=int, default=300, help="switches to make (300)")
    args = parser.parse_args(argv)
    record = provenance(
        "none: latency from fodns's API reply to each secondary's answer, absolute; the "
        "secondaries (versions below) are part of what is measured, not a baseline",
        argv,
        __file__,
    )
    print_report(record, file=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="fodns-secondaries-") as directory:
        report = {"provenance": record, **run(args.switches, Path(directory))}
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    for name, result in report["secondaries"].items():
        if not result["served_the_new_group"]:
            logged = "; ".join(result["failures_logged"])
            print(f"{name}: never served the new group, not measured; it logged: {logged}")
            continue
        print(
            f"{name}: {result['served']} of {args.switches} switches served, "
            f"p50 {result['p50_ms']} ms, p99 {result['p99_ms']} ms, max {result['max_ms']} ms "
            f"after the API's reply ({result['missed']} missed)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
