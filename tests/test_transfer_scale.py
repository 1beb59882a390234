"""A zone of 100,000 failover groups goes out by AXFR whole and right, while the
server keeps answering queries (the transfer is sent a few messages at a time)."""

from __future__ import annotations

import ipaddress
import json
import sqlite3
import subprocess
import threading
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import dns.message

from fodns.store import Store, ZoneDefaults
from tests.support import SECRET, FodnsProcess
from tests.support.transfer import TOKEN, transfer_options

GROUPS = 100_000
APPS = 1_000
NOW = "2026-11-22T00:00:00.000Z"


def web_head(app: int) -> list[str]:
    """App i: a load balancer hostname for every tenth, else two addresses."""
    if app % 10 == 0:
        return [f"lb{app}.example.com."]
    base = int(ipaddress.IPv4Address("10.0.0.0")) + app * 4
    return [str(ipaddress.IPv4Address(base + 1)), str(ipaddress.IPv4Address(base + 2))]


def label(group: int) -> str:
    return f"{group // 1_000_000:03d}-{group // 1000 % 1000:03d}-{group % 1000:03d}"


def active_app(group: int) -> int:
    """Group i: primary app i % APPS, backup the next; every third is switched to backup."""
    return (group + 1) % APPS if group % 3 == 0 else group % APPS


def fill_store(path: Path) -> None:
    """The apps and groups written straight into SQLite: the set-up is not under test."""
    Store(path, {"fo.example.net": ZoneDefaults(serial=1)}).close()
    with sqlite3.connect(path) as db:
        db.executemany(
            "INSERT INTO apps (id, name, load_balancer, web_servers, created_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            [
                (
                    i + 1,
                    f"app-{i}",
                    json.dumps(web_head(i) if i % 10 == 0 else []),
                    json.dumps([] if i % 10 == 0 else web_head(i)),
                    NOW,
                    NOW,
                )
                for i in range(APPS)
            ],
        )
        db.executemany(
            "INSERT INTO labels VALUES ('fo.example.net', ?, ?)",
            [(label(i), NOW) for i in range(GROUPS)],
        )
        db.executemany(
            "INSERT INTO groups (zone, label, primary_app_id, backup_app_id, active, ttl,"
            " created_at, updated_at) VALUES ('fo.example.net', ?, ?, ?, ?, 30, ?, ?)",
            [
                (
                    label(i),
                    1 + i % APPS,
                    1 + (i + 1) % APPS,
                    "backup" if i % 3 == 0 else "primary",
                    NOW,
                    NOW,
                )
                for i in range(GROUPS)
            ],
        )


def test_a_zone_of_100000_groups_transfers_whole_while_queries_are_answered(
    fodns_factory: Callable[..., FodnsProcess], tmp_path: Path
) -> None:
    directory = tmp_path / "fodns"
    directory.mkdir()
    fill_store(directory / "fodns.db")
    server = fodns_factory(TOKEN, directory, **transfer_options())
    # dig is the secondary here: dnspython's parser would take 20 s over 290,000
    # records. dig checks every message's TSIG (RFC 8945 §5.3.1).
    dig = subprocess.Popen(
        [
            "dig",
            "@127.0.0.1",
            "-p",
            str(server.dns_port),
            "fo.example.net",
            "AXFR",
            "-y",
            f"hmac-sha256:xfr:{SECRET}",
            "+noall",
            "+answer",
            "+nocomments",
            "+tries=1",
            "+time=30",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    output: list[str] = []
    reader = threading.Thread(target=lambda: output.append(dig.communicate(timeout=300)[0]))
    reader.start()
    # Queries while the transfer runs: each must be answered (bounded by count
    # and by the transfer's end), not wait until the whole zone is sent.
    answered = 0
    while reader.is_alive() and answered < 100_000:
        group = answered * 7919 % GROUPS
        reply = server.udp(dns.message.make_query(f"{label(group)}.fo.example.net", "A"), 2.0)
        assert reply.answer, label(group)
        answered += 1
    reader.join(300)
    assert dig.returncode == 0 and output, output
    text = output[0]
    assert "verify" not in text and "failed" not in text, text[-500:]
    print(f"{answered} queries answered during the transfer")
    assert answered > 5, "too few queries overlapped the transfer to show anything"

    records: dict[str, set[str]] = defaultdict(set)
    soas = []
    for line in text.splitlines():
        if not line or line.startswith(";"):
            continue
        name, ttl, _, rdtype, data = line.split(None, 4)
        if rdtype == "SOA":
            soas.append(int(data.split()[2]))
        elif rdtype in ("A", "CNAME") and name.endswith(".fo.example.net."):
            records[name.removesuffix(".fo.example.net.")].add(f"{ttl} {data}")
    served = server.tcp(dns.message.make_query("fo.example.net", "SOA"))
    assert soas == [served.answer[0][0].serial] * 2  # RFC 5936 §2.2: SOA first and last
    for i in range(GROUPS):
        assert records.pop(label(i)) == {f"30 {value}" for value in web_head(active_app(i))}
    # What is left is the zone file's own records.
    assert records["www"] == {"3600 192.0.2.10", "3600 192.0.2.11"}
