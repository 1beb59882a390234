"""Zone transfers as a secondary makes them: the allow_transfer config, AXFR and IXFR
pulls that return what fodns logged for them, and stores filled straight in SQLite."""

from __future__ import annotations

import ipaddress
import json
import sqlite3
from pathlib import Path
from typing import Any

import dns.message
import dns.query
import dns.xfr
import dns.zone

from fodns.store import Store, ZoneDefaults
from tests.support.process import FodnsProcess, wait_for
from tests.support.tsig import KEY_NAME, KEYRING, keyring_for, tsig_table

ZONE = "fo.example.net"
TOKEN = "xfr-test-token-91c2"
ALLOW_KEY = f'{{ address = "127.0.0.1/32", key = "{KEY_NAME}" }}'
WRONG_SECRET = "d3Jvbmctc2VjcmV0LXdyb25nLXNlY3JldA=="
WRONG_KEYRING = keyring_for(secret=WRONG_SECRET)
NOW = "2026-11-22T00:00:00.000Z"


def transfer_options(
    allow: str = ALLOW_KEY, notify: int | None = None, algorithm: str = "hmac-sha256"
) -> dict[str, str]:
    """start_with_config's zone_extra/extra for a zone transferable as `allow` says
    (the xfr key by default), NOTIFYing 127.0.0.1:`notify` when given."""
    zone_extra = f"allow_transfer = [{allow}]\n"
    if notify is not None:
        zone_extra += f'notify = ["127.0.0.1:{notify}"]\n'
    return {"zone_extra": zone_extra, "extra": tsig_table(algorithm)}


def transfers_logged(server: FodnsProcess) -> list[dict[str, object]]:
    return server.log_events("zone_transferred")


def new_event(server: FodnsProcess, name: str, before: int, **fields: object) -> dict[str, Any]:
    """The `name` event with `fields` logged after the first `before` such events: waited
    for, since the log is read by a thread (and, with workers, written by another
    process), so a count taken just before may still miss an earlier request's line;
    the fields tell this request's line from that one."""

    def found() -> dict[str, Any] | None:
        for event in server.log_events(name)[before:]:
            if all(event.get(key) == value for key, value in fields.items()):
                return event
        return None

    assert wait_for(found, timeout=20), f"no {name} with {fields} in the log"
    event = found()
    assert event is not None
    return event


def new_transfer_event(server: FodnsProcess, before: int, **fields: object) -> dict[str, Any]:
    """The `zone_transferred` line of the transfer with `fields` made since `before`."""
    return new_event(server, "zone_transferred", before, **fields)


def pull(
    server: FodnsProcess,
    keyring: Any = KEYRING,
    keyname: str | None = f"{KEY_NAME}.",
    timeout: float = 20,
    **kwargs: Any,
) -> dns.zone.Zone:
    """The zone by AXFR over TCP, signed with `keyring` (None: unsigned)."""
    return dns.zone.from_xfr(
        dns.query.xfr(
            "127.0.0.1",
            ZONE,
            port=server.dns_port,
            keyring=keyring,
            keyname=keyname if keyring else None,
            timeout=timeout,
            **kwargs,
        )
    )


def transfer_messages(server: FodnsProcess, timeout: float = 20) -> list[dns.message.Message]:
    """Every message of a signed AXFR; dnspython checks each one's TSIG (RFC 8945
    §5.3.1) and that the stream ends with the SOA."""
    return list(
        dns.query.xfr(
            "127.0.0.1",
            ZONE,
            port=server.dns_port,
            keyring=KEYRING,
            keyname=f"{KEY_NAME}.",
            timeout=timeout,
        )
    )


def ixfr(
    server: FodnsProcess,
    zone: dns.zone.Zone,
    serial: int | None = 0,
    udp_mode: dns.query.UDPMode = dns.query.UDPMode.NEVER,
) -> dict[str, object]:
    """Bring `zone` up to date by IXFR from its serial (0) or `serial` (None: AXFR), as
    a secondary does; what fodns logged for this transfer (its own line, not an earlier
    one's)."""
    query, asked = dns.xfr.make_query(zone, serial=serial, keyring=KEYRING, keyname=f"{KEY_NAME}.")
    before = len(transfers_logged(server))
    dns.query.inbound_xfr(
        "127.0.0.1", zone, query, port=server.dns_port, timeout=20, udp_mode=udp_mode
    )
    if asked is None:
        return new_transfer_event(server, before, type="AXFR")
    return new_transfer_event(server, before, type="IXFR", client_serial=asked)


def records(zone: dns.zone.Zone) -> set[str]:
    return {
        f"{name} {rdataset.ttl} {rdataset.rdtype} {rdata}"
        for name, rdataset in zone.iterate_rdatasets()
        for rdata in rdataset
    }


def same_records(left: dns.zone.Zone, right: dns.zone.Zone) -> bool:
    return records(left) == records(right)


def served(zone: dns.zone.Zone, name: str, rdtype: str) -> set[str]:
    rdataset = zone.get_rdataset(name, rdtype)
    return {r.to_text() for r in rdataset} if rdataset else set()


def addresses(version: int, count: int) -> list[str]:
    """`count` consecutive documentation-range addresses of IP `version`."""
    base = ipaddress.ip_address("10.0.0.0" if version == 4 else "2001:db8::")
    return [str(base + 1 + index) for index in range(count)]


def fill_store(path: Path, apps: dict[str, list[str]], groups: dict[str, str]) -> None:
    """Apps with web heads of any size, and groups on them, written straight into the
    database of a server not yet started: the admin API caps a web head's size, the
    store and the transfer must not depend on that."""
    Store(path, {ZONE: ZoneDefaults(serial=1)}).close()
    ids = {name: index + 1 for index, name in enumerate(apps)}
    with sqlite3.connect(path) as db:
        db.executemany(
            "INSERT INTO apps (id, name, web_servers, created_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?)",
            [(ids[name], name, json.dumps(head), NOW, NOW) for name, head in apps.items()],
        )
        db.executemany(f"INSERT INTO labels VALUES ('{ZONE}', ?, ?)", [(g, NOW) for g in groups])
        db.executemany(
            "INSERT INTO groups (zone, label, primary_app_id, active, ttl, created_at,"
            f" updated_at) VALUES ('{ZONE}', ?, ?, 'primary', 30, ?, ?)",
            [(label, ids[app], NOW, NOW) for label, app in groups.items()],
        )
