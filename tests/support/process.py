"""Running the real `fodns serve` on loopback ports the OS picks, and reading its log."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dns.exception
import dns.message
import dns.query

REPOSITORY = Path(__file__).resolve().parents[2]
TEST_ZONES = REPOSITORY / "tests" / "zones"
EXAMPLE_ZONE = REPOSITORY / "zones" / "fo.example.net.zone"
START_TIMEOUT = 30.0


@dataclass
class FodnsProcess:
    """A running `fodns serve` child process and the addresses it reported."""

    process: subprocess.Popen[str]
    dns_host: str
    dns_port: int
    api_port: int
    stderr_lines: list[str] = field(default_factory=list)
    killed: bool = False

    def udp(self, query: dns.message.Message, timeout: float = 5.0) -> dns.message.Message:
        """One UDP exchange; retried once, as a resolver would, so a busy CI host
        losing a datagram does not fail a test about something else."""
        try:
            return dns.query.udp(query, self.dns_host, port=self.dns_port, timeout=timeout)
        except dns.exception.Timeout:
            return dns.query.udp(query, self.dns_host, port=self.dns_port, timeout=timeout)

    def tcp(self, query: dns.message.Message, timeout: float = 5.0) -> dns.message.Message:
        return dns.query.tcp(query, self.dns_host, port=self.dns_port, timeout=timeout)

    def raw_udp(self, payload: bytes, timeout: float = 0.5) -> bytes | None:
        """Send bytes as they are; the reply bytes, or None when nothing came back."""
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.settimeout(timeout)
            sock.sendto(payload, (self.dns_host, self.dns_port))
            try:
                return sock.recv(65535)
            except TimeoutError:
                return None

    def http_get(self, path: str) -> tuple[int, str]:
        url = f"http://127.0.0.1:{self.api_port}{path}"
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode()

    def alive(self) -> bool:
        return self.process.poll() is None

    def follow_log(self) -> None:
        """Keep reading the log so a chatty server never blocks on a full pipe."""
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.stderr_lines.append(line)

    def log_events(self, name: str) -> list[dict[str, object]]:
        return [e for e in map(_json_event, list(self.stderr_lines)) if e.get("event") == name]

    def kill(self) -> None:
        """SIGKILL, as `kill -9` or the OOM killer would: no chance to clean up. The
        process is marked, so fixtures expect exit -9 from it instead of 0."""
        self.killed = True
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> int:
        if self.alive():
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


def write_config(
    directory: Path,
    zones: list[tuple[str, Path]],
    dns_extra: str = "",
    zone_extra: str = "",
    extra: str = "",
    workers: int | None = None,
) -> Path:
    """A config on OS-picked loopback ports; `zone_extra` is added to every zone's
    table, `extra` (e.g. [tsig.*] tables) to the end; `workers` DNS processes when given."""
    if workers is not None:
        dns_extra = f"workers = {workers}\n{dns_extra}"
    zone_tables = "\n".join(
        f'[[zones]]\nname = "{name}"\nfile = "{file}"\n{zone_extra}' for name, file in zones
    )
    config = directory / "fodns.toml"
    config.write_text(
        f'[dns]\nlisten = ["127.0.0.1:0"]\n{dns_extra}\n'
        f'[api]\nlisten = "127.0.0.1:0"\n'
        f'[store]\npath = "{directory / "fodns.db"}"\n'
        f"{zone_tables}\n{extra}"
    )
    return config


def wait_for(condition: Callable[[], object], timeout: float = 10.0) -> bool:
    """Poll `condition` until it is true or `timeout` seconds pass (bounded)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return False


def start_fodns(
    *args: str,
    cwd: Path = REPOSITORY,
    env: dict[str, str] | None = None,
    program: Sequence[str] = (sys.executable, "-m", "fodns"),
    stdout: Any = subprocess.DEVNULL,
) -> FodnsProcess:
    """Start `fodns serve ARGS` and wait for its dns_listening and api_listening events.
    `program` is how fodns is run: this checkout's, or an installed `fodns` script;
    `stdout` where what it prints for people goes (a file, say)."""
    process = subprocess.Popen(
        [*program, "serve", *args],
        cwd=cwd,
        stdout=stdout,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
    )
    assert process.stderr is not None
    dns_address: tuple[str, int] | None = None
    api_port: int | None = None
    lines: list[str] = []
    deadline = time.monotonic() + START_TIMEOUT
    while (dns_address is None or api_port is None) and time.monotonic() < deadline:
        line = process.stderr.readline()
        if not line:
            break
        lines.append(line)
        event = _json_event(line)
        if event.get("event") == "dns_listening":
            host, _, port = event["listen"][0].rpartition(":")
            dns_address = (host.strip("[]"), int(port))
        elif event.get("event") == "api_listening":
            api_port = int(event["listen"].rpartition(":")[2])
    if dns_address is None or api_port is None:
        process.kill()
        rest = process.stderr.read()
        raise AssertionError(f"fodns did not start:\n{''.join(lines)}{rest}")
    running = FodnsProcess(process, dns_address[0], dns_address[1], api_port, lines)
    threading.Thread(target=running.follow_log, daemon=True).start()
    return running


def start_with_config(
    directory: Path,
    token: str,
    workers: int = 1,
    zones: list[tuple[str, Path]] | None = None,
    dns_extra: str = "",
    zone_extra: str = "",
    extra: str = "",
    env: dict[str, str] | None = None,
) -> FodnsProcess:
    """`fodns serve` of `zones` (the example zone by default) with `workers` DNS
    processes and `token` as its admin token, its config and database in `directory`."""
    config = write_config(
        directory,
        zones if zones is not None else [("fo.example.net", EXAMPLE_ZONE)],
        dns_extra=dns_extra,
        zone_extra=zone_extra,
        extra=extra,
        workers=workers,
    )
    return start_fodns("--config", str(config), env={"FODNS_ADMIN_TOKEN": token, **(env or {})})


@contextmanager
def serving(running: FodnsProcess) -> Iterator[FodnsProcess]:
    """Hand out a started fodns; afterwards, even when the test failed, stop it: it must
    shut down cleanly and never have raised while answering."""
    try:
        yield running
    finally:
        assert running.stop() == 0, "fodns did not shut down cleanly on SIGTERM"
    failures = running.log_events("query_failed")
    assert not failures, f"the server raised while answering: {failures}"


# The zones the wire tests ask about: the example zone, a test zone and its child.
WIRE_ZONES = [
    ("fo.example.net", EXAMPLE_ZONE),
    ("test.example", TEST_ZONES / "test.example.zone"),
    ("child.test.example", TEST_ZONES / "child.test.example.zone"),
]


@contextmanager
def example_fodns(directory: Path, token: str) -> Iterator[FodnsProcess]:
    """`fodns serve` of the example zone in `directory` with `token` as its admin
    token; afterwards it must shut down cleanly."""
    config = write_config(directory, [("fo.example.net", EXAMPLE_ZONE)])
    running = start_fodns("--config", str(config), env={"FODNS_ADMIN_TOKEN": token})
    yield running
    assert running.stop() == 0, "fodns did not shut down cleanly on SIGTERM"


def _json_event(line: str) -> dict[str, object]:
    try:
        event = json.loads(line)
    except json.JSONDecodeError:
        return {}
    return event if isinstance(event, dict) else {}


def file_mode(path: Path) -> int:
    """The permission bits of `path`."""
    return path.stat().st_mode & 0o777


class Fleet:
    """A test module's shared fodns servers, one per worker count, each started (with
    `extra` config) the first time a test asks for it; stop() stops them all."""

    def __init__(self, directory: Path, token: str, extra: str = "") -> None:
        self.directory = directory
        self.token = token
        self.extra = extra
        self.running: dict[int, FodnsProcess] = {}

    def get(self, workers: int) -> FodnsProcess:
        if workers not in self.running:
            folder = self.directory / f"workers{workers}"
            folder.mkdir()
            self.running[workers] = start_with_config(
                folder, self.token, workers=workers, extra=self.extra
            )
        return self.running[workers]

    def stop(self) -> None:
        """Stop every server; AssertionError unless each shut down cleanly (exit 0)."""
        exits = {workers: running.stop() for workers, running in self.running.items()}
        assert all(code == 0 for code in exits.values()), (
            f"fodns did not shut down cleanly: {exits}"
        )
