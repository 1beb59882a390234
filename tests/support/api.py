"""The admin API over real HTTP, as curl or the CLI would use it."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tests.support.process import FodnsProcess


def api_request(
    server: FodnsProcess, method: str, path: str, body: object = None, token: str = ""
) -> tuple[int, Any]:
    """One admin API call: (status, decoded JSON body or None)."""
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


def expect_status(method: str, path: str, got: int, payload: Any, status: int) -> Any:
    assert got == status, f"{method} {path}: {got} {payload}, expected {status}"
    return payload


class Api:
    """Calls to one fodns with one token; `ok` asserts the exact status."""

    def __init__(self, server: FodnsProcess, token: str) -> None:
        self.server = server
        self.token = token

    def call(
        self, method: str, path: str, body: Any = None, token: str | None = None
    ) -> tuple[int, Any]:
        chosen = token if token is not None else self.token
        return api_request(self.server, method, path, body, chosen)

    def ok(self, method: str, path: str, body: Any = None, status: int = 200) -> Any:
        """The call's body, after asserting it answered exactly `status`: a helper that
        accepts any 2xx hides a route that began answering 202 (not yet served)."""
        got, payload = self.call(method, path, body)
        return expect_status(method, path, got, payload, status)


def http_exchange(
    server: FodnsProcess,
    method: str,
    path: str,
    token: str = "",
    body: bytes = b"",
    headers: dict[str, str] | None = None,
    timeout: float = 10.0,
) -> tuple[int, dict[str, str], bytes]:
    """One HTTP/1.1 request as these bytes, read to the connection's close: (status,
    headers lower-cased, every byte after the header block). Unlike urllib it sends any
    method and shows a body sent where none belongs (after HEAD, with a 204)."""
    sent = {"Host": "127.0.0.1", "Connection": "close", **(headers or {})}
    lines = [f"{method} {path} HTTP/1.1", *(f"{name}: {value}" for name, value in sent.items())]
    if token:
        lines.append(f"Authorization: Bearer {token}")
    if body:
        lines.append(f"Content-Length: {len(body)}")
    with socket.create_connection(("127.0.0.1", server.api_port), timeout=timeout) as sock:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    parsed = {
        name.strip().lower(): value.strip()
        for name, _, value in (line.partition(":") for line in header_lines)
    }
    return int(status_line.split()[1]), parsed, rest


def run_cli(server: FodnsProcess, token: str, *args: str) -> subprocess.CompletedProcess[str]:
    """`fodns ARGS...` as a shell would run it against `server`'s API with `token`
    (FODNS_API and FODNS_ADMIN_TOKEN, nothing else of this environment)."""
    return subprocess.run(
        [sys.executable, "-m", "fodns", *args],
        capture_output=True,
        text=True,
        timeout=30,
        env={
            "PATH": "/usr/bin:/bin",
            "FODNS_API": f"http://127.0.0.1:{server.api_port}",
            "FODNS_ADMIN_TOKEN": token,
        },
    )
