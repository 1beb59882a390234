"""A real fodns mirroring to a real moto_server through the recording proxy: the rig the
Route53 end-to-end tests share (see tests/route53_emulator.py for the emulator)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.route53_emulator import MotoServer, RecordingProxy
from tests.support import (
    EXAMPLE_ZONE,
    TEST_ZONES,
    FodnsProcess,
    api_request,
    start_fodns,
    wait_for,
)

ZONE = "fo.example.net"
OTHER_ZONE = "test.example"
ZONE_FILES = {ZONE: EXAMPLE_ZONE, OTHER_ZONE: TEST_ZONES / "test.example.zone"}
TOKEN = "route53-test-token"
MIRROR_WAIT = 3.0  # the promise: a change is in Route53 within 3 s
AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_EC2_METADATA_DISABLED": "true",  # never look for an instance role off loopback
    "NO_PROXY": "127.0.0.1",
}
Records = dict[tuple[str, str], tuple[int, frozenset[str]]]


@dataclass
class Rig:
    moto: MotoServer
    proxy: RecordingProxy
    zone_id: str
    directory: Path
    fodns: FodnsProcess | None = None
    zone_ids: dict[str, str] = field(default_factory=dict)  # every hosted zone by zone name

    def __post_init__(self) -> None:
        self.zone_ids.setdefault(ZONE, self.zone_id)

    def add_zone(self, name: str) -> str:
        """Another hosted zone, mirrored once fodns (re)starts."""
        self.zone_ids[name] = self.moto.create_zone(name)
        return self.zone_ids[name]

    def write_config(self, full_sync_interval: int = 3600, route53_extra: str = "") -> Path:
        zones = "".join(
            f'[[zones]]\nname = "{name}"\nfile = "{ZONE_FILES[name]}"\n'
            f'route53_hosted_zone_id = "{zone_id}"\n'
            for name, zone_id in self.zone_ids.items()
        )
        config = self.directory / "fodns.toml"
        config.write_text(
            '[dns]\nlisten = ["127.0.0.1:0"]\n'
            '[api]\nlisten = "127.0.0.1:0"\n'
            f'[store]\npath = "{self.directory / "fodns.db"}"\n'
            f"{zones}"
            f'[route53]\nenabled = true\nendpoint_url = "{self.proxy.url}"\n'
            f"full_sync_interval = {full_sync_interval}\n{route53_extra}"
        )
        return config

    def start_fodns(self, full_sync_interval: int = 3600, route53_extra: str = "") -> FodnsProcess:
        config = self.write_config(full_sync_interval, route53_extra)
        self.fodns = start_fodns(
            "--config", str(config), env={"FODNS_ADMIN_TOKEN": TOKEN, **AWS_ENV}
        )
        return self.fodns

    def call(self, method: str, path: str, body: object = None) -> tuple[int, Any]:
        assert self.fodns is not None
        return api_request(self.fodns, method, path, body, TOKEN)

    def api(self, method: str, path: str, body: object = None) -> Any:
        status, payload = self.call(method, path, body)
        assert status in (200, 201, 204), (method, path, status, payload)
        return payload

    def owned(self, zone: str = ZONE) -> Records:
        """Route53's A/AAAA/CNAME record sets, as the moto API lists them."""
        return {
            key: value
            for key, value in self.moto.records(self.zone_ids[zone]).items()
            if key[1] in ("A", "AAAA", "CNAME")
        }

    def expected(self, zone: str = ZONE) -> Records:
        """Every group's answer in `zone`, as fodns's API shows it."""
        wanted: dict[tuple[str, str], tuple[int, set[str]]] = {}
        for group in self.api("GET", "/v1/groups")["groups"]:
            if group["zone"] != zone:
                continue
            for record in group["answer"]:
                key = (f"{group['fqdn']}.", record["type"])
                wanted.setdefault(key, (group["ttl"], set()))[1].add(record["data"])
        return {key: (ttl, frozenset(values)) for key, (ttl, values) in wanted.items()}

    def mirrored(
        self, timeout: float = MIRROR_WAIT, extra: Records | None = None, zone: str = ZONE
    ) -> bool:
        """Whether Route53 comes to hold exactly fodns's answers (plus `extra`) in time."""
        want = {**self.expected(zone), **(extra or {})}
        return wait_for(lambda: self.owned(zone) == want, timeout)

    def health(self) -> dict[str, Any]:
        """The route53 section of /healthz."""
        assert self.fodns is not None
        return json.loads(self.fodns.http_get("/healthz")[1])["route53"]  # type: ignore[no-any-return]

    def metrics(self) -> str:
        assert self.fodns is not None
        return self.fodns.http_get("/metrics")[1]

    def manual_record(
        self,
        name: str,
        rtype: str,
        value: str | list[str],
        action: str = "UPSERT",
        zone: str = ZONE,
        ttl: int = 300,
    ) -> None:
        """A record someone else manages in the hosted zone (straight to moto)."""
        self.moto.client().change_resource_record_sets(
            HostedZoneId=self.zone_ids[zone],
            ChangeBatch={
                "Changes": [
                    {
                        "Action": action,
                        "ResourceRecordSet": {
                            "Name": name,
                            "Type": rtype,
                            "TTL": ttl,
                            "ResourceRecords": [
                                {"Value": v} for v in ([value] if isinstance(value, str) else value)
                            ],
                        },
                    }
                ]
            },
        )

    def client(self, *args: str) -> str:
        """`fodns ARGS` as the CLI client of this fodns; its standard output."""
        assert self.fodns is not None
        result = subprocess.run(
            [sys.executable, "-m", "fodns", *args],
            env={
                "FODNS_API": f"http://127.0.0.1:{self.fodns.api_port}",
                "FODNS_ADMIN_TOKEN": TOKEN,
                "PATH": "/usr/bin:/bin",
            },
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, result.stderr
        return result.stdout


@contextmanager
def route53_rig(directory: Path) -> Iterator[Rig]:
    """moto, the proxy in front of it and one hosted zone for ZONE; fodns is started by
    the test (Rig.start_fodns) and stopped here."""
    moto = MotoServer()
    moto.start()
    proxy = RecordingProxy(moto.url)
    proxy.start()
    running = Rig(moto, proxy, moto.create_zone(ZONE), directory)
    try:
        yield running
    finally:
        if running.fodns is not None:
            running.fodns.stop()
        proxy.stop()
        moto.stop()


def add_apps(rig: Rig) -> None:
    rig.api("POST", "/v1/apps", {"name": "eu", "web_servers": ["192.0.2.10", "192.0.2.11"]})
    rig.api("POST", "/v1/apps", {"name": "us", "load_balancer": ["lb.us.example.com"]})
