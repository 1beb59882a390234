"""docs/backup.md, done as written: an online backup of a running fodns, more changes,
a stop (clean, or a crash), the restore, and what the page promises afterwards.

The page's blocks run in bash exactly as they are, except that `/var/` becomes a folder
under tmp_path laid out as systemd lays out a DynamicUser= service (the state directory
/var/lib/private/fodns, reached through the /var/lib/fodns symlink), and `systemctl
stop|start fodns` is done by the test on its own `fodns serve`. A dnspython zone kept
up to date by SOA checks and IXFR plays a secondary, refreshing only when the
primary's serial is newer than its own, as Knot and NSD do (RFC 1982 comparison); the
Route53 mirror's part runs against the moto emulator of tests/route53_rig.py.
"""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import sys
from collections.abc import Iterator
from pathlib import Path

import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import dns.serial
import dns.xfr
import dns.zone
import pytest

from tests.host import ZONE, Host
from tests.route53_rig import TOKEN, Rig, add_apps, route53_rig
from tests.secondaries import guide_block
from tests.support import (
    EXAMPLE_ZONE,
    REPOSITORY,
    Api,
    FodnsProcess,
    api_request,
    file_mode,
    wait_for,
)

GUIDE = REPOSITORY / "docs" / "backup.md"
# The page's example of the backup to restore, replaced with the file backup.sh made.
GUIDE_BACKUP = "/var/backups/fodns/fodns-20261122T070000Z.db"
SERIAL_LINE = re.compile(r"^(\s*)(\d+)(\s*; serial)", re.M)


def set_up(host: Host, workers: int) -> None:
    """The example zone, and a config on loopback that lets a secondary transfer."""
    host.lay_out()
    host.zone_file.write_text(EXAMPLE_ZONE.read_text())
    host.config.write_text(
        f'[dns]\nlisten = ["127.0.0.1:0"]\nworkers = {workers}\n'
        f'[api]\nlisten = "127.0.0.1:0"\n'
        f'[store]\npath = "{host.database}"\n'
        f'[[zones]]\nname = "{ZONE}"\nfile = "{host.zone_file}"\n'
        'allow_transfer = [{ address = "127.0.0.1/32" }]\n'
    )


class ZoneCopy:
    """A secondary's copy of the zone: it asks for the SOA and transfers by IXFR only
    when the primary's serial is newer than its own."""

    def __init__(self) -> None:
        self.zone = dns.zone.Zone(f"{ZONE}.")
        self.serial: int | None = None

    def refresh(self, server: FodnsProcess) -> bool:
        """One refresh against `server`; whether it transferred anything."""
        primary = soa_serial(server)
        if self.serial is not None and dns.serial.Serial(primary) <= self.serial:
            return False
        query, _ = dns.xfr.make_query(self.zone, serial=self.serial)
        dns.query.inbound_xfr("127.0.0.1", self.zone, query, port=server.dns_port, timeout=10)
        self.serial = self.zone.get_soa().serial
        return True

    def labels(self) -> set[str]:
        return {name.to_text() for name in self.zone.nodes if GROUP_LABEL.match(name.to_text())}


GROUP_LABEL = re.compile(r"^\d{3}-\d{3}-\d{3}$")


def soa_serial(server: FodnsProcess) -> int:
    response = server.udp(dns.message.make_query(f"{ZONE}.", "SOA"))
    return int(response.answer[0][0].serial)


def addresses(server: FodnsProcess, label: str) -> tuple[int, set[str]]:
    response = server.udp(dns.message.make_query(f"{label}.{ZONE}.", "A"))
    return response.rcode(), {rdata.to_text() for rrset in response.answer for rdata in rrset}


def create_group(server: FodnsProcess, token: str, **fields: str) -> str:
    return str(Api(server, token).ok("POST", "/v1/groups", fields, 201)["label"])


def refused_label(server: FodnsProcess, token: str, label: str) -> bool:
    """A new group with `label` is refused as taken (409), and nothing changes."""
    status, payload = api_request(server, "POST", "/v1/groups", {"label": label}, token)
    return status == 409 and payload["error"]["field"] == "label"


@pytest.fixture
def host(tmp_path: Path) -> Iterator[Host]:
    yield Host(tmp_path / "host")


@pytest.mark.parametrize(
    ("workers", "stop_signal"),
    [(2, signal.SIGTERM), (1, signal.SIGKILL)],
    ids=["stopped-2-workers", "crashed-1-worker"],
)
def test_a_restore_done_as_documented(host: Host, workers: int, stop_signal: int) -> None:
    set_up(host, workers)
    server = host.start()
    token = host.token
    secondary = ZoneCopy()
    try:
        api = Api(server, token)
        api.ok("POST", "/v1/apps", {"name": "shop-eu", "web_servers": ["192.0.2.10"]}, 201)
        api.ok("POST", "/v1/apps", {"name": "shop-us", "web_servers": ["192.0.2.20"]}, 201)
        switched = create_group(server, token, primary="shop-eu", backup="shop-us")
        kept = create_group(server, token, primary="shop-us")
        tombstoned = create_group(server, token)
        api.ok("DELETE", f"/v1/groups/{tombstoned}", status=204)
        assert secondary.refresh(server)

        host.shell(guide_block("sh title=backup.sh", GUIDE))  # while fodns runs

        api.ok("POST", f"/v1/groups/{switched}/switch", {"to": "backup"})
        created_since = create_group(server, token, primary="shop-eu")
        tombstoned_since = create_group(server, token)
        api.ok("DELETE", f"/v1/groups/{tombstoned_since}", status=204)
        assert secondary.refresh(server)
        assert created_since in secondary.labels()
    finally:
        if stop_signal == signal.SIGKILL:
            server.process.kill()
            server.process.wait()
        else:
            assert server.stop() == 0
    if stop_signal == signal.SIGKILL:
        # What the restore must not let back in: changes since the backup, in the WAL.
        assert (host.state / "fodns.db-wal").stat().st_size > 0

    # Step 1: `systemctl stop fodns` is done above; the rest of the block as written.
    (made,) = host.backups.glob("fodns-*.db")
    restore = guide_block("sh title=restore.sh", GUIDE)
    assert restore.count("\nsystemctl stop fodns\n") == 1 and GUIDE_BACKUP in restore
    restore = restore.replace("\nsystemctl stop fodns\n", "\n: stopped by the test\n")
    restore = restore.replace(GUIDE_BACKUP, f"/var/backups/fodns/{made.name}")
    output = host.shell(restore + '\nprintf "%s\\n" "$aside"\n')
    aside = output.splitlines()[-1]
    assert output.splitlines()[0] == "ok"  # the backup's integrity check
    assert file_mode(host.state / "fodns.db") == 0o600
    assert (host.state / "fodns.db").stat().st_uid == host.state.stat().st_uid
    assert not list(host.state.glob("fodns.db-*")), "a -wal or -shm was left beside the backup"

    # Step 2: the labels handed out since the backup, from the database moved aside.
    # The page runs steps 1, 2 and 5 in one shell; here $aside is handed on by hand.
    host.shell(
        f"backup=/var/backups/fodns/{made.name}\n" + guide_block("sh title=lost-labels.sh", GUIDE),
        env={"aside": aside},
    )
    since = Path(aside) / "labels-since-backup"
    assert sorted(since.read_text().splitlines()) == sorted(
        f"{ZONE} {label}" for label in (created_since, tombstoned_since)
    )

    # Step 3: the zone file's serial to one more than the highest a secondary serves.
    backup = sqlite3.connect(f"file:{made}?mode=ro", uri=True)
    try:
        (restored_serial,) = backup.execute("SELECT serial FROM zone_serials").fetchone()
    finally:
        backup.close()
    assert secondary.serial is not None and restored_serial < secondary.serial
    text = host.zone_file.read_text()
    assert len(SERIAL_LINE.findall(text)) == 1
    host.zone_file.write_text(SERIAL_LINE.sub(rf"\g<1>{secondary.serial + 1}\g<3>", text))

    # Step 4: start and check.
    server = host.start()
    try:
        token = host.token  # kept in the state directory through the restore
        assert server.http_get("/healthz")[0] == 200
        assert dns.serial.Serial(soa_serial(server)) > secondary.serial
        assert addresses(server, switched) == (dns.rcode.NOERROR, {"192.0.2.10"})  # undone
        assert addresses(server, kept) == (dns.rcode.NOERROR, {"192.0.2.20"})
        assert addresses(server, created_since) == (dns.rcode.NXDOMAIN, set())
        assert api_request(server, "GET", f"/v1/groups/{created_since}", token=token)[0] == 404
        assert refused_label(server, token, tombstoned)

        # The secondary sees a newer serial, asks for an IXFR from its own, which the
        # restored journal does not reach, and gets the whole zone: fodns's state.
        assert secondary.refresh(server)
        assert secondary.labels() == {switched, kept}

        # Step 5: every label handed out since the backup is taken again.
        host.shell(
            guide_block("sh title=reserve-labels.sh", GUIDE),
            env={
                "aside": aside,
                "FODNS_ADMIN_TOKEN": token,
                "FODNS_API": f"http://127.0.0.1:{server.api_port}",
                "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
            },
        )
        assert refused_label(server, token, created_since)
        assert refused_label(server, token, tombstoned_since)
        assert addresses(server, created_since) == (dns.rcode.NXDOMAIN, set())
        assert server.http_get("/healthz")[0] == 200
    finally:
        assert server.stop() == 0


def mirror_remembers_route53(rig: Rig, database: Path) -> bool:
    """The mirror has stored every record set the hosted zone holds (it stores them
    once Route53 has taken a batch, a moment after the hosted zone shows them)."""
    connection = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
    try:
        rows = connection.execute("SELECT name, type, ttl, record_values FROM route53_records")
        remembered = {(name, kind): (ttl, frozenset(json.loads(v))) for name, kind, ttl, v in rows}
    finally:
        connection.close()
    return remembered == rig.owned()


def test_a_restore_with_the_route53_mirror(tmp_path: Path) -> None:
    """What the page says of the mirror after a restore, and its remedy: a record set
    fodns remembers is set back, one written since the backup is left alone as someone
    else's (in the way of a group, or holding a label handed out since); once deleted
    from the hosted zone and synced, Route53 equals fodns and every label is taken."""
    host = Host(tmp_path / "host")
    host.lay_out()
    with route53_rig(host.database.parent) as rig:
        rig.start_fodns()
        add_apps(rig)  # eu: two web servers (A); us: a load balancer name (CNAME)
        switched = rig.api("POST", "/v1/groups", {"primary": "eu", "backup": "us"})["label"]
        kept = rig.api("POST", "/v1/groups", {"primary": "eu"})["label"]
        assert rig.mirrored() and wait_for(lambda: mirror_remembers_route53(rig, host.database))
        host.shell(guide_block("sh title=backup.sh", GUIDE))

        rig.api("POST", f"/v1/groups/{switched}/switch", {"to": "backup"})  # A -> CNAME
        rig.api("PATCH", "/v1/apps/eu", {"web_servers": ["192.0.2.99"]})  # kept's A changes
        created_since = rig.api("POST", "/v1/groups", {"primary": "eu"})["label"]
        assert rig.mirrored()
        assert rig.fodns is not None and rig.fodns.stop() == 0

        (made,) = host.backups.glob("fodns-*.db")
        restore = guide_block("sh title=restore.sh", GUIDE)
        restore = restore.replace("\nsystemctl stop fodns\n", "\n: stopped by the test\n")
        restore = restore.replace(GUIDE_BACKUP, f"/var/backups/fodns/{made.name}")
        aside = host.shell(restore + '\nprintf "%s\\n" "$aside"\n').splitlines()[-1]
        host.shell(
            f"backup=/var/backups/fodns/{made.name}\n"
            + guide_block("sh title=lost-labels.sh", GUIDE),
            env={"aside": aside},
        )
        server = rig.start_fodns()

        fqdn = {label: f"{label}.{ZONE}." for label in (switched, kept, created_since)}
        restored = (30, frozenset({"192.0.2.10", "192.0.2.11"}))
        assert wait_for(lambda: rig.owned().get((fqdn[kept], "A")) == restored)
        plan = rig.client("route53", "plan")
        assert f"! {fqdn[switched]} A: left alone, in the way: CNAME" in plan
        assert rig.owned()[(fqdn[created_since], "A")] == (30, frozenset({"192.0.2.99"}))
        status, error = rig.call("POST", "/v1/groups", {"label": created_since})
        assert status == 409 and "route53" in error["error"]["message"]

        # The remedy: delete both record sets in the hosted zone, sync, reserve.
        rig.manual_record(fqdn[switched], "CNAME", "lb.us.example.com.", "DELETE", ttl=30)
        rig.manual_record(fqdn[created_since], "A", "192.0.2.99", "DELETE", ttl=30)
        rig.client("route53", "sync")
        assert rig.mirrored()
        host.shell(
            guide_block("sh title=reserve-labels.sh", GUIDE),
            env={
                "aside": aside,
                "FODNS_ADMIN_TOKEN": TOKEN,
                "FODNS_API": f"http://127.0.0.1:{server.api_port}",
                "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
            },
        )
        status, error = rig.call("POST", "/v1/groups", {"label": created_since})
        assert status == 409 and "route53" not in error["error"]["message"]
        assert rig.mirrored()
