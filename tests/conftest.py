"""Fixtures that run the real `fodns serve` on loopback ports the OS picks."""

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
import pytest

REPOSITORY = Path(__file__).resolve().parent.parent
TEST_ZONES = Path(__file__).resolve().parent / "zones"
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

    def stop(self) -> int:
        if self.alive():
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


def recv_exactly(sock: socket.socket, size: int) -> bytes | None:
    """`size` bytes, or None if the server closed (or reset) the connection first."""
    data = b""
    while len(data) < size:
        try:
            chunk = sock.recv(size - len(data))
        except ConnectionResetError:
            return None
        if not chunk:
            return None
        data += chunk
    return data


def write_config(
    directory: Path,
    zones: list[tuple[str, Path]],
    dns_extra: str = "",
    zone_extra: str = "",
    extra: str = "",
) -> Path:
    """A config on OS-picked loopback ports; `zone_extra` is added to every zone's
    table, `extra` (e.g. [tsig.*] tables) to the end."""
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


def api_request(
    server: FodnsProcess, method: str, path: str, body: object = None, token: str = ""
) -> tuple[int, Any]:
    """One admin API call over real HTTP: (status, decoded JSON body or None)."""
    request = urllib.request.Request(
        f"http://127.0.0.1:{server.api_port}{path}",
        data=json.dumps(body).encode() if body is not None else None,
        method=method,
        headers={
            "Content-Type": "application/json",
            **({"Authorization": f"Bearer {token}"} if token else {}),
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            payload = response.read()
            return response.status, json.loads(payload) if payload else None
    except urllib.error.HTTPError as error:
        payload = error.read()
        return error.code, json.loads(payload) if payload else None


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


@pytest.fixture
def umask_022() -> Iterator[None]:
    """The usual login umask, under which new files are readable by everyone: what fodns
    creates must be private anyway (outside systemd there is no UMask=0077)."""
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def file_mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FodnsProcess]:
    """One fodns serving the example zone and the test zones, shared by the wire tests."""
    directory = tmp_path_factory.mktemp("server")
    config = write_config(
        directory,
        [
            ("fo.example.net", EXAMPLE_ZONE),
            ("test.example", TEST_ZONES / "test.example.zone"),
            ("child.test.example", TEST_ZONES / "child.test.example.zone"),
        ],
    )
    running = start_fodns("--config", str(config))
    yield running
    assert running.stop() == 0, "fodns did not shut down cleanly on SIGTERM"
    failures = running.log_events("query_failed")
    assert not failures, f"the server raised while answering: {failures}"
