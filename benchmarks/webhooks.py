"""Webhooks against switches: what delivering them costs the switch API, and how far
behind a switch its delivery arrives (issue 14).

    .venv/bin/python benchmarks/webhooks.py [--workers 1 2] [--switches 300] [--rounds 2]
        [--burst 1000] [--out PATH]

For each worker count, one `fodns serve` (a fresh database, the example zone, loopback
ports the OS picks) and one group. Each round times `--switches` switches through the
API, one after another (each a new HTTP connection, as curl makes), in four settings
taken in turn, the order rotated each round:

- none:    no webhook;
- fast:    one webhook to a receiver that answers 200 at once;
- hanging: one webhook to a receiver that never answers (fodns holds one request,
           [webhooks] timeout = 300 s, so it stays held for the whole run);
- both:    the two together.

It reports each setting's switch latency p50 and p99 over every round, and, where a
fast receiver is there, each switch's delivery lag: from the switch's request leaving
to its event arriving (both on this process's monotonic clock: the receivers are
aiohttp servers on threads of this process). Then a burst: `--burst` switches as fast
as one client sends them, with the fast receiver; the time from the last switch's
reply to its delivery, and whether every switch arrived in order.

Everything binds 127.0.0.1; every wait is bounded; only the processes started here
are stopped, by their handles. The JSON record (with its provenance) goes to
benchmarks/out/webhooks-<date>.json unless --out says where.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from provenance import REPOSITORY, print_report, provenance

sys.path.insert(0, str(REPOSITORY))

from tests.support import HANG, Api, Receiver, answering, start_with_config

TOKEN = "webhooks-benchmark-token-1c9e"
SETTINGS = ("none", "fast", "hanging", "both")
DELIVERY_WAIT = 60.0  # seconds the last delivery of a phase may take, at most
# A hanging receiver's request must stay held for the whole run.
CONFIG = "[webhooks]\ntimeout = 300\n"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--switches", type=int, default=300, help="switches per setting")
    parser.add_argument("--rounds", type=int, default=2, help="each setting's turns")
    parser.add_argument("--burst", type=int, default=1000, help="switches in the burst")
    parser.add_argument("--out", type=Path, help="the JSON record (default benchmarks/out/)")
    args = parser.parse_args(argv)
    if not 1 <= args.switches <= 10_000 or not 1 <= args.burst <= 10_000:
        parser.error("--switches and --burst: 1 to 10,000")
    if not 1 <= args.rounds <= 20:
        parser.error("--rounds: 1 to 20")
    return args


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def milliseconds(values: list[float]) -> dict[str, float]:
    return {
        "p50_ms": round(statistics.median(values) * 1000, 3),
        "p99_ms": round(percentile(values, 0.99) * 1000, 3),
        "max_ms": round(max(values) * 1000, 3),
        "count": len(values),
    }


class Switcher:
    """Switches one group back and forth through the API, timing each."""

    def __init__(self, api: Api, label: str) -> None:
        self.api = api
        self.label = label
        self.side = "primary"

    def switch(self) -> tuple[float, float]:
        """When the request left and when its answer came, on the monotonic clock."""
        self.side = "backup" if self.side == "primary" else "primary"
        sent = time.monotonic()
        group = self.api.ok("POST", f"/v1/groups/{self.label}/switch", {"to": self.side})
        answered = time.monotonic()
        assert group["active"] == self.side
        return sent, answered


def last_seq(api: Api) -> int:
    return int(api.ok("GET", "/v1/events?limit=1")["last_seq"])


def run_setting(
    api: Api, switcher: Switcher, setting: str, switches: int
) -> tuple[list[float], list[float]]:
    """`switches` switches with the setting's webhooks; their latencies, and (with a fast
    receiver) each one's delivery lag from its request leaving."""
    receivers: list[Receiver] = []
    try:
        fast = hanging = None
        if setting in ("fast", "both"):
            fast = Receiver()
            receivers.append(fast)
        if setting in ("hanging", "both"):
            hanging = Receiver(answer=answering(HANG))
            receivers.append(hanging)
        hooks = [
            api.ok("POST", "/v1/webhooks", {"url": r.url, "events": ["switch"]}, 201)["id"]
            for r in receivers
        ]
        if hanging is not None:  # held from the first switch on
            switcher.switch()
            assert hanging.wait_for(lambda got: len(got) == 1, DELIVERY_WAIT)
        already = 0 if fast is None else len(fast.requests())
        before = last_seq(api)
        timings = [switcher.switch() for _ in range(switches)]
        latencies = [answered - sent for sent, answered in timings]
        lags: list[float] = []
        if fast is not None:
            after = last_seq(api)
            assert fast.wait_for(lambda got: any(r.seq == after for r in got), DELIVERY_WAIT), (
                "the fast receiver did not get every switch"
            )
            arrived = {r.seq: r.at for r in fast.requests()[already:] if r.seq is not None}
            seqs = sorted(seq for seq in arrived if seq > before)
            assert len(seqs) == switches, (len(seqs), switches)
            lags = [arrived[seq] - sent for seq, (sent, _) in zip(seqs, timings, strict=True)]
        for hook in hooks:
            api.ok("DELETE", f"/v1/webhooks/{hook}", status=204)
        return latencies, lags
    finally:
        for receiver in receivers:
            receiver.stop()


def burst(api: Api, switcher: Switcher, switches: int) -> dict[str, Any]:
    """`switches` switches back to back with one fast receiver: how long after the last
    reply the last delivery came, and whether all came in order."""
    with Receiver() as fast:
        hook = api.ok("POST", "/v1/webhooks", {"url": fast.url, "events": ["switch"]}, 201)
        before = last_seq(api)
        started = time.monotonic()
        for _ in range(switches):
            switcher.switch()
        replied = time.monotonic()
        after = last_seq(api)
        assert fast.wait_for(lambda got: any(r.seq == after for r in got), DELIVERY_WAIT)
        delivered = max(r.at for r in fast.requests() if r.seq == after)
        got = [r.seq for r in fast.requests() if r.seq is not None and r.seq > before]
        api.ok("DELETE", f"/v1/webhooks/{hook['id']}", status=204)
    return {
        "switches": switches,
        "switching_seconds": round(replied - started, 3),
        "switches_per_second": round(switches / (replied - started), 1),
        "last_delivered_after_last_reply_ms": round((delivered - replied) * 1000, 3),
        "in_order_exactly_once": got == sorted(set(got)) and len(got) == switches,
    }


def measure(workers: int, args: argparse.Namespace, say: Callable[[str], None]) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="fodns-webhooks-") as temporary:
        server = start_with_config(Path(temporary), TOKEN, workers=workers, extra=CONFIG)
        try:
            api = Api(server, TOKEN)
            for name, address in (("bench-eu", "192.0.2.10"), ("bench-us", "192.0.2.20")):
                api.ok("POST", "/v1/apps", {"name": name, "web_servers": [address]}, 201)
            group = {"label": "bench", "primary": "bench-eu", "backup": "bench-us"}
            api.ok("POST", "/v1/groups", group, 201)
            switcher = Switcher(api, "bench")
            for _ in range(50):  # warm: connections, caches, the first reads
                switcher.switch()
            latencies: dict[str, list[float]] = {setting: [] for setting in SETTINGS}
            lags: dict[str, list[float]] = {setting: [] for setting in SETTINGS}
            for round_index in range(args.rounds):
                order = SETTINGS[round_index % 4 :] + SETTINGS[: round_index % 4]
                for setting in order:
                    took, lagged = run_setting(api, switcher, setting, args.switches)
                    latencies[setting] += took
                    lags[setting] += lagged
                    say(
                        f"workers={workers} round {round_index + 1} {setting}: "
                        f"p50 {statistics.median(took) * 1000:.2f} ms"
                    )
            burst_result = burst(api, switcher, args.burst)
            alive = server.alive()
        finally:
            exit_status = server.stop()
    return {
        "workers": workers,
        "switch_latency": {setting: milliseconds(values) for setting, values in latencies.items()},
        "delivery_lag_from_request": {
            setting: milliseconds(values) for setting, values in lags.items() if values
        },
        "burst": burst_result,
        "fodns_alive_after": alive,
        "fodns_exit_status": exit_status,
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    record = provenance(
        "none within fodns: each setting against 'none' (no webhook) of the same run, "
        "taking turns; absolute latencies",
        argv,
        __file__,
    )
    print_report(record)
    results = [
        measure(workers, args, lambda line: print(line, flush=True)) for workers in args.workers
    ]
    document = {
        "provenance": record,
        "arguments": vars(args) | {"out": str(args.out)},
        "results": results,
    }
    path = args.out
    if path is None:
        output = REPOSITORY / "benchmarks" / "out"
        output.mkdir(parents=True, exist_ok=True)
        path = output / f"webhooks-{time.strftime('%Y%m%dT%H%M%S')}.json"
    path.write_text(json.dumps(document, indent=2) + "\n")
    print()
    print("workers  setting   switch p50   switch p99   delivery lag p50 / p99 (from request)")
    for result in results:
        for setting in SETTINGS:
            latency = result["switch_latency"][setting]
            lag = result["delivery_lag_from_request"].get(setting)
            lag_text = f"{lag['p50_ms']:.2f} / {lag['p99_ms']:.2f} ms" if lag else "-"
            print(
                f"{result['workers']:>7}  {setting:<8}  {latency['p50_ms']:>8.2f} ms"
                f"  {latency['p99_ms']:>8.2f} ms   {lag_text}"
            )
        b = result["burst"]
        print(
            f"{result['workers']:>7}  burst of {b['switches']}:"
            f" {b['switches_per_second']} switches/s,"
            f" last delivered {b['last_delivered_after_last_reply_ms']:.1f} ms after the last"
            f" reply, in order exactly once: {b['in_order_exactly_once']}"
        )
    print(f"record in {path}")
    ok = all(r["fodns_alive_after"] and r["fodns_exit_status"] == 0 for r in results)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
