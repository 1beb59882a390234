"""The `fodns` client commands against a real server: what an operator types in a shell."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import dns.message
import pytest

from tests.conftest import FodnsProcess, example_fodns

TOKEN = "cli-test-token-2f9b"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[FodnsProcess]:
    with example_fodns(tmp_path, TOKEN) as running:
        yield running


def fodns(server: FodnsProcess, *args: str, token: str = TOKEN) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fodns", *args],
        capture_output=True,
        text=True,
        timeout=30,
        env={
            "FODNS_API": f"http://127.0.0.1:{server.api_port}",
            "FODNS_ADMIN_TOKEN": token,
            "PATH": "/usr/bin:/bin",
        },
    )


def test_an_operator_session(server: FodnsProcess) -> None:
    assert fodns(server, "app", "create", "eu", "--web-server", "192.0.2.10").returncode == 0
    assert (
        fodns(server, "app", "create", "us", "--load-balancer", "lb.us.example.com").returncode == 0
    )
    created = fodns(
        server, "group", "create", "--primary", "eu", "--backup", "us", "--label", "shop"
    )
    assert created.returncode == 0, created.stderr
    assert json.loads(created.stdout)["fqdn"] == "shop.fo.example.net"

    assert fodns(server, "status", "eu").stdout.strip() == "FAILOVER_STATUS=online"
    assert fodns(server, "status", "us").stdout.strip() == "FAILOVER_STATUS=offline"
    switched = fodns(server, "group", "switch", "shop", "backup", "--reason", "drill")
    assert json.loads(switched.stdout)["active"] == "backup"
    reply = server.udp(dns.message.make_query("shop.fo.example.net", "CNAME"))
    assert reply.answer[0][0].target.to_text() == "lb.us.example.com."
    assert fodns(server, "status", "us").stdout.strip() == "FAILOVER_STATUS=online"

    events = json.loads(fodns(server, "events", "--group", "shop").stdout)
    assert events[0]["action"] == "group_switched" and events[0]["reason"] == "drill"
    listed = json.loads(fodns(server, "group", "list").stdout)
    assert [g["label"] for g in listed] == ["shop"]


def test_errors_are_one_line_with_a_non_zero_exit(server: FodnsProcess) -> None:
    missing = fodns(server, "group", "show", "nope")
    assert missing.returncode == 1 and missing.stderr.startswith("fodns: error: HTTP 404")
    unauthorised = fodns(server, "group", "list", token="wrong")
    assert unauthorised.returncode == 1 and "HTTP 401" in unauthorised.stderr
