"""The DNS worker processes of a running `fodns serve`, found as the kernel sees them."""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tests.support.api import api_request

if TYPE_CHECKING:
    from tests.support.process import FodnsProcess

# How multiprocessing runs the DNS workers: fodns serve starts a fork server (its command
# line says so), and each worker is forked from it, keeping that command line. The
# resource tracker, the pool's other child, runs resource_tracker instead.
FORK_SERVER = b"from multiprocessing.forkserver import main"
MULTIPROCESSING_CHILD = b"-c from multiprocessing."


def children(pid: int) -> list[int]:
    """The PIDs whose parent is `pid` now (every thread's children, as /proc lists them)."""
    found: list[int] = []
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except FileNotFoundError:
        return found
    for task in tasks:
        try:
            found += [int(child) for child in (task / "children").read_text().split()]
        except FileNotFoundError:
            continue
    return found


def descendants(pid: int) -> list[int]:
    """Every process below `pid` now: its children, theirs, and so on."""
    found: list[int] = []
    below = children(pid)
    while below:
        found += below
        below = [grandchild for child in below for grandchild in children(child)]
    return found


def command_line(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
    except FileNotFoundError:
        return b""


def running(pid: int) -> bool:
    """Whether `pid` is a process that still runs (a zombie has finished)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state not in ("Z", "X")


def worker_pids(server: FodnsProcess) -> list[int]:
    """The DNS worker processes `fodns serve` runs now, from the process tree (not from
    what fodns reports about itself), in PID order; none with workers = 1."""
    fork_servers = [pid for pid in children(server.process.pid) if FORK_SERVER in command_line(pid)]
    return sorted(pid for parent in fork_servers for pid in children(parent) if running(pid))


def health(server: FodnsProcess) -> tuple[int, dict[str, Any]]:
    """/healthz: (status, body)."""
    status, body = api_request(server, "GET", "/healthz")
    return status, body


def slot_pids(server: FodnsProcess) -> dict[int, int]:
    """Worker slot -> the PID /healthz says serves it."""
    return {state["index"]: state["pid"] for state in health(server)[1]["dns_workers"]}


def metric(server: FodnsProcess, name: str) -> float:
    """One unlabelled sample of /metrics."""
    for line in server.http_get("/metrics")[1].splitlines():
        if line.startswith(f"{name} "):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} is not in /metrics")


@contextmanager
def stopped(pid: int) -> Iterator[None]:
    """SIGSTOP `pid` (alive, holding its sockets, doing nothing) until the block ends."""
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(pid, signal.SIGCONT)


def kill_leftovers(pids: list[int]) -> list[int]:
    """SIGKILL each of `pids` (fodns's multiprocessing children, started by a test) that
    still runs; the ones it had to kill."""
    # Checked by command line too: a PID the kernel handed on is not ours to kill.
    left = [pid for pid in pids if running(pid) and MULTIPROCESSING_CHILD in command_line(pid)]
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    return left


def log_order(server: FodnsProcess, *names: str) -> list[str]:
    """The events among `names` in the order fodns logged them."""
    order = []
    for line in list(server.stderr_lines):
        try:
            event = json.loads(line).get("event")
        except (json.JSONDecodeError, AttributeError):
            continue
        if event in names:
            order.append(event)
    return order
