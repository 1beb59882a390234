"""systemd/README.md's steps, as far as they run without systemd: fodns.toml.example as
step 3 installs it and step 5 edits it, the zone file of step 4, what the checks of
step 8 show, the start-up failures step 7 quotes, and the CLI of step 10, run as
written. The host's /etc and /var are folders under tmp_path (tests/host.py), and the
DNS and API listen on loopback ports the OS picks instead of 53 and 8053."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import pytest

from tests.host import ZONE, Host
from tests.secondaries import guide_block
from tests.support import REPOSITORY, FodnsProcess, api_request

README = REPOSITORY / "systemd" / "README.md"
EXAMPLE_CONFIG = REPOSITORY / "systemd" / "fodns.toml.example"
DNS_LISTEN = 'listen = ["0.0.0.0:53", "[::]:53"]'
API_LISTEN = 'listen = "127.0.0.1:8053"'
GLUE_V4 = "203.0.113.10"


def install(host: Host, zone_text: str | None = None) -> None:
    """Steps 3 to 5: the example config and the guide's zone file in place."""
    host.lay_out()
    zone = guide_block("text title=fo.example.net.zone", README)
    host.zone_file.write_text(zone if zone_text is None else zone_text)
    config = host.on_host(EXAMPLE_CONFIG.read_text())
    assert config.count(DNS_LISTEN) == 1 and config.count(API_LISTEN) == 1
    config = config.replace(DNS_LISTEN, 'listen = ["127.0.0.1:0"]')
    host.config.write_text(config.replace(API_LISTEN, 'listen = "127.0.0.1:0"'))


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Host, FodnsProcess]]:
    host = Host(tmp_path / "host")
    install(host)
    server = host.start()
    yield host, server
    assert server.stop() == 0


def test_the_guide_zone_is_served_with_its_glue(served: tuple[Host, FodnsProcess]) -> None:
    _, server = served
    soa = server.udp(dns.message.make_query(f"{ZONE}.", "SOA"))
    assert soa.rcode() == dns.rcode.NOERROR and soa.flags & dns.flags.AA
    assert soa.answer[0][0].to_text() == (
        "ns1.fo.example.net. hostmaster.example.net. 2026112201 7200 3600 1209600 300"
    )
    ns = server.udp(dns.message.make_query(f"{ZONE}.", "NS"))
    assert [rdata.to_text() for rdata in ns.answer[0]] == ["ns1.fo.example.net."]
    glue = {
        (dns.rdatatype.to_text(rrset.rdtype), rdata.to_text())
        for rrset in ns.additional
        for rdata in rrset
    }
    assert glue == {("A", GLUE_V4), ("AAAA", "2001:db8::10")}
    status, body = server.http_get("/healthz")
    assert status == 200 and '"ready": true' in body


def test_the_guide_cli_runs_as_written(served: tuple[Host, FodnsProcess]) -> None:
    """Step 10 with the generated token from the state directory."""
    host, server = served
    output = host.shell(
        guide_block("sh title=cli.sh", README),
        env={
            "FODNS_API": f"http://127.0.0.1:{server.api_port}",
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        },
    )
    assert "FAILOVER_STATUS=offline" in output.splitlines()
    status, group = api_request(server, "GET", "/v1/groups/shop", token=host.token)
    assert status == 200 and group["active"] == "backup"
    response = server.udp(dns.message.make_query(f"shop.{ZONE}.", "A"))
    assert response.answer[0].to_text() == "shop.fo.example.net. 30 IN CNAME lb.us.example.com."


def failure_lines() -> list[str]:
    """The start-up failures step 7 shows, as the guide prints them."""
    return [line for line in README.read_text().splitlines() if line.startswith("fodns: error: ")]


def failed_start(host: Host, *args: str) -> str:
    """`fodns serve` that must not start: its last line on stderr."""
    result = subprocess.run(
        [sys.executable, "-m", "fodns", "serve", "--config", str(host.config), *args],
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, "FODNS_ADMIN_TOKEN": ""},
    )
    assert result.returncode == 2, result.stderr
    return result.stderr.splitlines()[-1]


def test_a_zone_file_error_reads_as_the_guide_shows(tmp_path: Path) -> None:
    host = Host(tmp_path / "host")
    zone = guide_block("text title=fo.example.net.zone", README)
    assert zone.count(f"{GLUE_V4}\n") == 1
    install(host, zone.replace(f"{GLUE_V4}\n", "203.0.113.300\n"))
    (shown,) = [line for line in failure_lines() if "malformed" in line]
    assert failed_start(host) == host.on_host(shown)


def test_a_port_in_use_reads_as_the_guide_shows(tmp_path: Path) -> None:
    host = Host(tmp_path / "host")
    install(host)
    (shown,) = [line for line in failure_lines() if "already in use" in line]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as holder:
        holder.bind(("127.0.0.1", 0))
        taken = f"127.0.0.1:{holder.getsockname()[1]}"
        said = failed_start(host, "--dns-listen", taken)
    assert said == shown.replace("0.0.0.0:53", taken)
