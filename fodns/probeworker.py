"""The health-check process: runs the check attempts of fodns's own probe, apart from DNS.

Checks are network I/O and CPU (a TLS handshake, an HTTP exchange) that must never
take a turn from DNS: not in a DNS worker, and not on the main process's loop either
(with `workers = 1` that loop answers DNS). So the attempts run here, in a child
process at a lower CPU priority (nice 10) than DNS, and only their results cross
back. The checker (fodns/checker.py) in the main process keeps every decision: it
tells this process which apps to check (a line of JSON each time the set changes)
and reads one line per round of an app: its id and each address's result.

The protocol, on stdin and stdout, one JSON object a line:
  in:  {"apps": [{"id": 7, "web_head": ["192.0.2.10"], "check": {...CheckSpec...}}]}
  out: {"id": 7, "results": [["192.0.2.10", null, {...CheckResult...}]]}
The process ends when its stdin closes (its parent is gone), so it is never orphaned.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fodns.checks import CheckSpec
from fodns.probing import CheckResult, Prober, resolve_error

# Lower than DNS: when the CPU is short, the kernel gives it to DNS first.
NICENESS = 10
TICK = 0.1  # how often due rounds are started (seconds)
# Rounds of the apps fodns starts with (or adds at once) are spread over this much
# of their interval (and no more than the interval), so they do not come as one burst.
FIRST_ROUND_SPREAD = 1.0


@dataclass
class Checked:
    id: int
    web_head: tuple[str, ...]
    spec: CheckSpec
    due: float
    running: asyncio.Task[None] | None = None


# What a round found: (address, hostname or None, its result) for each address.
RoundResults = list[tuple[str, str | None, CheckResult]]


class ProbeWorker:
    """Runs every app's rounds at its interval and hands each round's results to
    `found(app_id, results)`: this process writes them to its parent, `fodns probe`
    keeps its own verdicts from them."""

    def __init__(self, found: Callable[[int, RoundResults], None], concurrency: int) -> None:
        self._found = found
        self._prober = Prober(concurrency=concurrency)
        self._apps: dict[int, Checked] = {}

    def take(self, apps: list[dict[str, Any]]) -> None:
        """The apps to check now: a new or changed app starts at a point spread over
        its interval; one no longer listed stops."""
        wanted = {
            int(item["id"]): (tuple(item["web_head"]), CheckSpec.from_json(item["check"]))
            for item in apps
        }
        for app_id in list(self._apps):
            known = self._apps[app_id]
            if wanted.get(app_id) != (known.web_head, known.spec):
                if known.running is not None:
                    known.running.cancel()
                del self._apps[app_id]
        now = time.monotonic()
        for app_id, (web_head, spec) in wanted.items():
            if app_id not in self._apps:
                # The golden ratio spreads consecutive ids evenly over [0, 1).
                offset = (app_id * 0.6180339887) % 1.0 * spec.interval * FIRST_ROUND_SPREAD
                self._apps[app_id] = Checked(app_id, web_head, spec, now + offset)

    async def run(self) -> None:
        try:
            while True:
                now = time.monotonic()
                for checked in self._apps.values():
                    if checked.running is None and now >= checked.due:
                        checked.due = now + checked.spec.interval
                        checked.running = asyncio.get_running_loop().create_task(
                            self._round(checked)
                        )
                await asyncio.sleep(TICK)
        finally:
            for checked in self._apps.values():
                if checked.running is not None:
                    checked.running.cancel()
            await self._prober.close()

    async def _round(self, checked: Checked) -> None:
        try:
            targets = await self._prober.targets(checked.web_head)
            results: RoundResults
            if targets:
                found = await asyncio.gather(
                    *(self._prober.check(checked.spec, a, h) for a, h in targets)
                )
                results = [(a, h, r) for (a, h), r in zip(targets, found, strict=True)]
            else:
                name = checked.web_head[0] if checked.web_head else str(checked.id)
                failure = resolve_error(name)
                results = [(failure.address, name, failure)]
            self._found(checked.id, results)
        finally:
            checked.running = None


async def main(concurrency: int) -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=64 * 1024 * 1024)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)

    def write(app_id: int, results: RoundResults) -> None:
        line = {"id": app_id, "results": [[a, h, r.to_json()] for a, h, r in results]}
        sys.stdout.write(json.dumps(line, separators=(",", ":")) + "\n")
        sys.stdout.flush()

    worker = ProbeWorker(write, concurrency)
    rounds = loop.create_task(worker.run())
    try:
        while line := await reader.readline():
            worker.take(json.loads(line)["apps"])
    finally:  # stdin closed: the parent is gone or stopping
        rounds.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await rounds


if __name__ == "__main__":
    with contextlib.suppress(OSError):
        os.nice(NICENESS)
    with contextlib.suppress(KeyboardInterrupt, BrokenPipeError):
        asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 256))
