"""Starting, reloading and stopping `fodns serve` as an operator does: real processes,
real files, real signals; every start-up failure is one clear line naming its cause."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import dns.message
import dns.rcode
import pytest

from tests.support import (
    EXAMPLE_ZONE,
    REPOSITORY,
    TEST_ZONES,
    Api,
    FodnsProcess,
    answer_data,
    ask_every_worker,
    file_mode,
    start_fodns,
    wait_for,
    write_config,
)

TOKEN = "startup-test-token-41c7"
# The conftest fixture `fodns_factory`: start_with_config's arguments, stopped at teardown.
StartFodns = Callable[..., FodnsProcess]


def run_serve(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    """Run `fodns serve` expecting it to stop on its own (a start-up error)."""
    return subprocess.run(
        [sys.executable, "-m", "fodns", "serve", *args],
        cwd=REPOSITORY,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def config_with(tmp_path: Path, body: str) -> Path:
    config = tmp_path / "bad.toml"
    config.write_text(body)
    return config


ZONE_LINE = f'[[zones]]\nname = "fo.example.net"\nfile = "{EXAMPLE_ZONE}"\n'


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("[dns\nlisten = 1", "not valid TOML"),
        ('[dns]\nlisten = ["127.0.0.1:0"]\nlistn = 1\n' + ZONE_LINE, "dns.listn: unknown key"),
        ('[dns]\nlisten = ["localhost"]\n' + ZONE_LINE, "is not HOST:PORT"),
        ("[dns]\nworkers = 0\n" + ZONE_LINE, "dns.workers: 0 is outside 1-64"),
        ("[dns]\nudp_payload = 100\n" + ZONE_LINE, "dns.udp_payload: 100 is outside 512-4096"),
        ('[dns]\nworkers = "two"\n' + ZONE_LINE, "dns.workers: must be int"),
        (
            "[dns]\ntcp_message_timeout = 0\n" + ZONE_LINE,
            "dns.tcp_message_timeout: 0 is outside 0.1-3600 seconds",
        ),
        (
            "[dns]\ntcp_write_timeout = 7200\n" + ZONE_LINE,
            "dns.tcp_write_timeout: 7200 is outside 0.1-3600 seconds",
        ),
        (
            '[dns]\ntcp_idle_timeout = "10s"\n' + ZONE_LINE,
            "dns.tcp_idle_timeout: must be a number of seconds, not '10s'",
        ),
        (
            "[dns]\ntcp_max_connections_per_source = 0\n" + ZONE_LINE,
            "dns.tcp_max_connections_per_source: 0 is outside 1-100000",
        ),
        (ZONE_LINE.replace("file", "group_ttl = 3\nfile"), "zones[0].group_ttl: 3 is outside"),
        ('[[zones]]\nname = "fo.example.net"\n', "zones[0].file: is required"),
        ("[dns]\n", "zones: needs at least one"),
        (
            ZONE_LINE + 'allow_transfer = [{ address = "nowhere" }]\n',
            "zones[0].allow_transfer[0].address: is not an address or network",
        ),
        (
            ZONE_LINE + 'allow_transfer = [{ address = "127.0.0.1", key = "xfr" }]\n',
            "zones[0].allow_transfer[0].key: no [tsig.xfr] in this file",
        ),
        (ZONE_LINE + 'notify = ["somewhere"]\n', "notify[0]: 'somewhere' is not HOST:PORT"),
        (
            # RFC 8945 §4.2: key names are domain names, so these two are one key.
            ZONE_LINE + '[tsig.xfr]\nsecret = "c2VjcmV0"\n[tsig."XFR."]\nsecret = "c2VjcmV0"\n',
            "tsig.XFR.: the same key name as tsig.xfr",
        ),
    ],
)
def test_a_bad_config_stops_start_up_naming_file_and_key(
    tmp_path: Path, body: str, expected: str
) -> None:
    config = config_with(tmp_path, body)
    result = run_serve("--config", str(config))
    assert result.returncode == 2
    assert f"fodns: error: {config}" in result.stderr
    assert expected in result.stderr


@pytest.mark.parametrize(
    ("zone_text", "expected"),
    [
        (
            "$ORIGIN z.example.\n$TTL 60\n@ SOA ns hm 1 1 1 1 1\n@ NS ns\nns A 192.0.2.1\n"
            "bad A 1.2.3.999\n",
            ":6: malformed record data: bad A 1.2.3.999",
        ),
        (
            "$ORIGIN z.example.\n$TTL 60\n@ SOA ns hm 1 1 1 1 1\n@ NS ns\nns BOGUS x\n",
            ":5: unknown rdatatype 'BOGUS'",
        ),
        ("$ORIGIN z.example.\n$TTL 60\n@ NS ns\nns A 192.0.2.1\n", "has no SOA record"),
        (
            "$ORIGIN z.example.\n$TTL 60\n@ SOA ns hm 1 1 1 1 1\n@ NS ns\n",
            "nameserver ns.z.example. is inside the zone but has no A or AAAA record",
        ),
        (
            "$ORIGIN z.example.\n$TTL 60\n@ SOA ns hm 1 1 1 1 1\n@ NS ns\nns A 192.0.2.1\n"
            "w CNAME x\nw A 192.0.2.2\n",
            ":7: a name has a CNAME and other data: w A 192.0.2.2",
        ),
    ],
)
def test_a_bad_zone_file_stops_start_up_naming_file_and_line(
    tmp_path: Path, zone_text: str, expected: str
) -> None:
    zone_file = tmp_path / "z.example.zone"
    zone_file.write_text(zone_text)
    config = write_config(tmp_path, [("z.example", zone_file)])
    result = run_serve("--config", str(config))
    assert result.returncode == 2
    assert f"fodns: error: {zone_file}" in result.stderr
    assert expected in result.stderr


def test_a_missing_zone_file_is_named(tmp_path: Path) -> None:
    config = write_config(tmp_path, [("z.example", tmp_path / "absent.zone")])
    result = run_serve("--config", str(config))
    assert result.returncode == 2
    assert f"{tmp_path / 'absent.zone'}: zone file not found" in result.stderr


def test_a_database_that_cannot_be_created_is_named(tmp_path: Path) -> None:
    in_the_way = tmp_path / "a-file"
    in_the_way.write_text("")
    for database, message in [
        (in_the_way / "fodns.db", f"{in_the_way}: cannot create the database folder"),
        (Path("/proc/fodns.db"), "/proc/fodns.db: cannot create the database"),
    ]:
        result = run_serve("--dns-listen", "127.0.0.1:0", "--db", str(database))
        assert result.returncode == 2, result.stderr
        assert f"fodns: error: {message}: " in result.stderr
        assert "Traceback" not in result.stderr


def test_a_database_that_cannot_be_opened_is_named(tmp_path: Path) -> None:
    """What a botched restore leaves (docs/backup.md): a folder where the file should
    be, or a file that is no SQLite database (a compressed backup put in place as it
    is). One line naming the file, as for any other start-up error."""
    folder = tmp_path / "folder.db"
    folder.mkdir()
    compressed = tmp_path / "compressed.db"
    compressed.write_bytes(b"\x1f\x8b\x08\x00" + bytes(range(256)) * 8)
    for database, message in [
        (folder, "unable to open database file"),
        (compressed, "file is not a database"),
    ]:
        result = run_serve("--dns-listen", "127.0.0.1:0", "--db", str(database))
        assert result.returncode == 2, result.stderr
        assert f"fodns: error: {database}: cannot open the database: {message}" in result.stderr
        assert "Traceback" not in result.stderr


@pytest.mark.parametrize("kind", [socket.SOCK_DGRAM, socket.SOCK_STREAM])
def test_a_port_in_use_says_so(kind: int, tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET, kind) as taken:
        taken.bind(("127.0.0.1", 0))
        if kind == socket.SOCK_STREAM:
            taken.listen()
        port = taken.getsockname()[1]
        result = run_serve(
            "--dns-listen",
            f"127.0.0.1:{port}",
            "--api-listen",
            "127.0.0.1:0",
            "--db",
            str(tmp_path / "fodns.db"),
        )
    assert result.returncode == 2
    protocol = "udp" if kind == socket.SOCK_DGRAM else "tcp"
    assert (
        f"cannot listen on 127.0.0.1:{port} ({protocol}): address already in use" in result.stderr
    )


def test_with_no_config_it_serves_the_example_zone_to_dig(tmp_path: Path) -> None:
    """The README walk-through: `fodns serve`, then `dig @127.0.0.1 -p PORT www.fo.example.net`."""
    dig = shutil.which("dig")
    assert dig, "dig is installed by `make test` (bind9-dnsutils)"
    running = start_fodns(
        "--dns-listen",
        "127.0.0.1:0",
        "--api-listen",
        "127.0.0.1:0",
        "--db",
        str(tmp_path / "fodns.db"),
    )
    try:
        output = subprocess.run(
            [dig, "@127.0.0.1", "-p", str(running.dns_port), "www.fo.example.net", "+norec"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout
        assert "status: NOERROR" in output and "flags: qr aa;" in output
        assert "192.0.2.10" in output and "192.0.2.11" in output
        tcp = subprocess.run(
            [
                dig,
                "@127.0.0.1",
                "-p",
                str(running.dns_port),
                "www.fo.example.net",
                "AAAA",
                "+tcp",
                "+short",
            ],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout
        assert tcp.strip() == "2001:db8::10"
        status, body = running.http_get("/healthz")
        assert status == 200 and '"fo.example.net": 2026112201' in body
    finally:
        assert running.stop() == 0


@pytest.mark.usefixtures("umask_022")
def test_what_fodns_creates_on_disk_is_private(tmp_path: Path) -> None:
    """Outside systemd (no UMask=0077): the database's folder, the database with its
    -wal and -shm, and the generated admin token beside them."""
    state = tmp_path / "state"
    running = start_fodns(
        "--dns-listen", "127.0.0.1:0", "--api-listen", "127.0.0.1:0",
        "--db", str(state / "fodns.db"),
        env={"FODNS_ADMIN_TOKEN": ""},
    )  # fmt: skip
    try:
        modes = {file.name: file_mode(file) for file in state.iterdir()}
    finally:
        assert running.stop() == 0
    assert file_mode(state) == 0o700
    assert modes == {
        "fodns.db": 0o600,
        "fodns.db-wal": 0o600,
        "fodns.db-shm": 0o600,
        "admin-token": 0o600,
    }


def test_sighup_reloads_zone_files_and_keeps_the_old_table_when_one_is_broken(
    tmp_path: Path, workers: int, fodns_factory: StartFodns
) -> None:
    """Every worker reloads (each logs zones_reloaded) and then answers the new data; a
    broken file is refused by each, and each keeps serving what it had."""
    zone_file = tmp_path / "test.example.zone"
    shutil.copy(TEST_ZONES / "test.example.zone", zone_file)
    running = fodns_factory(TOKEN, workers=workers, zones=[("test.example", zone_file)])
    added = dns.message.make_query("added.test.example", "A")
    assert {reply.rcode() for reply in ask_every_worker(running, added)} == {dns.rcode.NXDOMAIN}
    assert answers(running, "www.test.example") == {frozenset({"192.0.2.1"})}

    zone_file.write_text(
        zone_file.read_text().replace("192.0.2.1\n", "192.0.2.111\n") + "added A 192.0.2.123\n"
    )
    reload(running, workers)
    assert answers(running, "added.test.example") == {frozenset({"192.0.2.123"})}
    assert answers(running, "www.test.example") == {frozenset({"192.0.2.111"})}

    zone_file.write_text(zone_file.read_text() + "broken A 999.1.1.1\n")
    running.process.send_signal(signal.SIGHUP)
    assert wait_for(lambda: len(running.log_events("zone_reload_failed")) == workers, 60)
    assert all(
        "malformed record data" in str(event) for event in running.log_events("zone_reload_failed")
    )
    assert answers(running, "added.test.example") == {frozenset({"192.0.2.123"})}
    assert len(running.log_events("zones_reloaded")) == workers  # the first reload only


def test_groups_survive_a_reload_and_a_zone_file_edit_does_not_take_their_names(
    tmp_path: Path, workers: int, fodns_factory: StartFodns
) -> None:
    """Groups live in the database, zone files on disk: a reload rebuilds the table from
    both, in every worker. A name the zone file starts using after a group took it stays
    the group's (customers point at it), said in the log; the file's new names become
    labels no group may take; a broken file changes nothing, and switches go on."""
    zone_file = tmp_path / "fo.example.net.zone"
    shutil.copy(EXAMPLE_ZONE, zone_file)
    running = fodns_factory(TOKEN, workers=workers, zones=[("fo.example.net", zone_file)])
    api = Api(running, TOKEN)
    api.ok("POST", "/v1/apps", {"name": "eu", "web_servers": ["192.0.2.10"]}, 201)
    api.ok("POST", "/v1/apps", {"name": "us", "web_servers": ["198.51.100.7"]}, 201)
    api.ok("POST", "/v1/groups", {"label": "shop", "primary": "eu", "backup": "us"}, 201)
    generated = api.ok("POST", "/v1/groups", {"primary": "us"}, 201)["label"]
    api.ok("POST", "/v1/groups", {"label": "spare"}, 201)  # no apps: NODATA, deletable
    api.ok("POST", "/v1/groups/shop/switch", {"to": "backup"})
    eu, us = frozenset({"192.0.2.10"}), frozenset({"198.51.100.7"})
    shop, other = "shop.fo.example.net", f"{generated}.fo.example.net"

    reload(running, workers)  # the same files: the groups are all still there
    assert answers(running, shop) == {us} and answers(running, other) == {us}
    (serial,) = soa_serials(running)
    # The table a reload built follows the log: a switch now is served by every worker.
    api.ok("POST", "/v1/groups/shop/switch", {"to": "primary"})
    assert answers(running, shop) == {eu}
    assert soa_serials(running) == {serial + 1}

    zone_file.write_text(
        zone_file.read_text() + "added A 192.0.2.123\nshop A 203.0.113.99\nspare A 203.0.113.5\n"
    )
    reload(running, workers)
    assert answers(running, "added.fo.example.net") == {frozenset({"192.0.2.123"})}
    assert answers(running, shop) == {eu}  # the group's, not the file's 203.0.113.99
    assert answers(running, "spare.fo.example.net") == {frozenset()}  # the group's NODATA
    assert soa_serials(running) == {serial + 2}  # an edited file moves the serial, once
    taken = sorted(event["name"] for event in running.log_events("zone_name_taken_by_group"))
    assert taken == sorted(["shop.fo.example.net.", "spare.fo.example.net."] * workers)
    # The group gone, the file's records there are served, as a restart would serve them.
    api.ok("DELETE", "/v1/groups/spare", status=204)
    assert answers(running, "spare.fo.example.net") == {frozenset({"203.0.113.5"})}
    status, body = api.call("POST", "/v1/groups", {"label": "added"})
    assert (status, body["error"]["field"]) == (409, "label"), body
    api.ok("POST", "/v1/groups/shop/switch", {"to": "backup"})
    assert answers(running, shop) == {us}

    zone_file.write_text(zone_file.read_text() + "broken A 999.1.1.1\n")
    running.process.send_signal(signal.SIGHUP)
    assert wait_for(lambda: len(running.log_events("zone_reload_failed")) == workers, 60)
    assert answers(running, shop) == {us} and answers(running, other) == {us}
    api.ok("POST", "/v1/groups/shop/switch", {"to": "primary"})
    assert answers(running, shop) == {eu}
    assert answers(running, "added.fo.example.net") == {frozenset({"192.0.2.123"})}


def reload(running: FodnsProcess, workers: int) -> None:
    """SIGHUP, then wait until every worker has logged its zones_reloaded."""
    before = len(running.log_events("zones_reloaded"))
    running.process.send_signal(signal.SIGHUP)
    assert wait_for(lambda: len(running.log_events("zones_reloaded")) == before + workers, 60)


def answers(running: FodnsProcess, name: str) -> set[frozenset[str]]:
    """What every worker answers for `name` (A): one element when they all agree."""
    query = dns.message.make_query(name, "A")
    return {frozenset(answer_data(reply)) for reply in ask_every_worker(running, query)}


def soa_serials(running: FodnsProcess) -> set[int]:
    query = dns.message.make_query("fo.example.net", "SOA")
    return {int(reply.answer[0][0].serial) for reply in ask_every_worker(running, query)}
