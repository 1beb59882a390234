"""Write tests/support/schema6_events.sql: a database of fodns at schema version 6 (before
events carried `touched`), made by that fodns's own store, as `sqlite3 .dump` prints it.

Run with the fodns of that version first on the path, e.g.:

    git archive f25917f fodns | tar -x -C /tmp/fodns6
    PYTHONPATH=/tmp/fodns6 .venv/bin/python tests/support/make_schema6_dump.py \
        tests/support/schema6_events.sql
"""

from __future__ import annotations

import sqlite3
import sys
import tempfile
from pathlib import Path

from fodns.migrations import LATEST
from fodns.store import Store, ZoneDefaults

ZONE = "fo.example.net"
OTHER = "test.example"


def main(out: Path) -> None:
    assert LATEST == 6, f"run this with the fodns of schema version 6, not {LATEST}"
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "fodns.db"
        zones = {ZONE: ZoneDefaults(serial=1), OTHER: ZoneDefaults(serial=1)}
        with Store(path, zones) as store:
            store.create_app("ops", "dc1", web_servers=["192.0.2.10"])
            store.create_app("ops", "dc2", web_servers=["192.0.2.20"])
            store.create_app("ops", "dc3", load_balancer="lb.dc3.example.com")
            store.create_group("ops", ZONE, "web", primary="dc1", backup="dc2")
            store.create_group("ops", ZONE, "api", primary="dc1")
            store.create_group("ops", OTHER, "web", primary="dc1", backup="dc3")
            store.create_group("ops", ZONE, "gone")
            store.switch("ops", "web", "backup", ZONE)
            store.update_group("ops", "api", ZONE, backup="dc2")
            store.update_app("ops", "dc1", new_name="dc1-renamed")
            store.update_group("ops", "web", OTHER, primary=None, backup=None)
            store.update_app("ops", "dc1-renamed", web_servers=["192.0.2.11"])
            store.delete_group("ops", "gone", ZONE)
            store.delete_app("ops", "dc3")
        with sqlite3.connect(path) as db:
            dump = "\n".join(db.iterdump())
    out.write_text(
        "-- A fodns database at schema version 6, written by tests/support/make_schema6_dump.py\n"
        + dump
        + "\n"
    )


if __name__ == "__main__":
    main(Path(sys.argv[1]))
