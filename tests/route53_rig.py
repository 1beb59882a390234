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

import dns.message
import dns.rdatatype

from tests.route53_emulator import MotoServer, RecordingProxy, restart_route53_empty
from tests.support import (
    EXAMPLE_ZONE,
    TEST_ZONES,
    Api,
    FodnsProcess,
    api_request,
    ask_every_worker,
    start_with_config,
    wait_for,
)

ZONE = "fo.example.net"
OTHER_ZONE = "test.example"
ZONE_FILES = {ZONE: EXAMPLE_ZONE, OTHER_ZONE: TEST_ZONES / "test.example.zone"}
TOKEN = "route53-test-token"
# A bound, not a promise: waits end as soon as Route53 holds the answer (a switch
# is there in about 0.2 s), and a busy two-core machine running the suite in
# parallel must not turn a slow moment into a failure.
MIRROR_WAIT = 30.0
AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_EC2_METADATA_DISABLED": "true",  # never look for an instance role off loopback
    "NO_PROXY": "127.0.0.1",
}
Records = dict[tuple[str, str], tuple[int, frozenset[str]]]


def served_status(method: str, path: str) -> int:
    """What the API answers a call it has done (a write: once DNS serves it; 202 says
    it does not yet): 201 for a new app or group, 204 for a deletion, else 200."""
    if method == "POST" and path in ("/v1/apps", "/v1/groups"):
        return 201
    return 204 if method == "DELETE" else 200


@dataclass
class Rig:
    moto: MotoServer
    proxy: RecordingProxy
    zone_id: str
    directory: Path
    fodns: FodnsProcess | None = None
    zone_ids: dict[str, str] = field(default_factory=dict)  # every hosted zone by zone name
    started: list[FodnsProcess] = field(default_factory=list)  # stopped at the end
    workers: int = 1  # DNS processes of each fodns started (the mirror is the API's)

    def __post_init__(self) -> None:
        self.zone_ids.setdefault(ZONE, self.zone_id)

    def add_zone(self, name: str) -> str:
        """Another hosted zone, mirrored once fodns (re)starts."""
        self.zone_ids[name] = self.moto.create_zone(name)
        return self.zone_ids[name]

    def route53_tables(
        self, full_sync_interval: int, route53_extra: str, zone_extra: str = ""
    ) -> str:
        """The [[zones]] tables, each naming its own hosted zone (and `zone_extra`), and
        [route53]."""
        zones = "".join(
            f'[[zones]]\nname = "{name}"\nfile = "{ZONE_FILES[name]}"\n'
            f'route53_hosted_zone_id = "{zone_id}"\n{zone_extra}'
            for name, zone_id in self.zone_ids.items()
        )
        return (
            f'{zones}[route53]\nenabled = true\nendpoint_url = "{self.proxy.url}"\n'
            f"full_sync_interval = {full_sync_interval}\n{route53_extra}"
        )

    def start_fodns(
        self,
        full_sync_interval: int = 3600,
        route53_extra: str = "",
        workers: int | None = None,
        zone_extra: str = "",
        extra: str = "",
    ) -> FodnsProcess:
        """fodns with `workers` DNS processes (default: the rig's), mirroring every hosted
        zone of the rig; its config and database in the rig's directory (a restart keeps
        the database). `zone_extra` goes into each zone's table, `extra` (e.g. [tsig.*])
        at the end."""
        self.fodns = start_with_config(
            self.directory,
            TOKEN,
            workers=self.workers if workers is None else workers,
            # Each zone names its own hosted zone, which zone_extra (the same for every
            # zone) cannot say: the zone tables come with [route53] instead.
            zones=[],
            extra=self.route53_tables(full_sync_interval, route53_extra, zone_extra) + extra,
            env=AWS_ENV,
        )
        self.started.append(self.fodns)
        return self.fodns

    def explain(self) -> None:
        """Print (for pytest to show with a failure) what fodns logged of the mirror, the
        calls Route53 got and what it holds."""
        for fodns in self.started:
            print("--- fodns log, route53 events:")
            print("".join(line for line in fodns.stderr_lines if "route53" in line)[-20_000:])
        print("--- Route53 calls (action, status):")
        print([(call.action, call.status) for call in self.proxy.calls()][-200:])
        print("--- Route53 holds:", self.owned() if self.moto.running else "(moto stopped)")

    @contextmanager
    def route53_comes_back(self) -> Iterator[None]:
        """Route53 loses every record and comes back (same hosted zone ids) holding what
        the block writes with `manual_record`: fodns's calls fail until the block ends,
        so it never sees the hosted zones half restored."""
        with self.proxy.held_down():
            zone_ids = restart_route53_empty(self.moto, self.proxy, list(self.zone_ids))
            assert zone_ids == self.zone_ids
            yield

    def kill_fodns(self) -> None:
        """SIGKILL, as a crash: the one fodns that need not exit cleanly."""
        assert self.fodns is not None
        self.fodns.process.kill()
        self.fodns.process.wait()
        self.started.remove(self.fodns)

    def call(self, method: str, path: str, body: object = None) -> tuple[int, Any]:
        assert self.fodns is not None
        return api_request(self.fodns, method, path, body, TOKEN)

    def api(self, method: str, path: str, body: object = None, status: int | None = None) -> Any:
        """The call's body, after asserting it answered exactly `status` (by default
        what the API answers that call once done and served: `served_status`)."""
        assert self.fodns is not None
        expected = served_status(method, path) if status is None else status
        return Api(self.fodns, TOKEN).ok(method, path, body, expected)

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
        if wait_for(lambda: self.owned(zone) == want, timeout):
            return True
        print("--- fodns's answers:", want)
        self.explain()  # pytest shows it with the failure
        return False

    def served(self, fqdn: str, qtype: str) -> Records:
        """What fodns's DNS answers `fqdn` `qtype` with, as Records; the same question
        goes to every worker, and every worker must answer alike."""
        assert self.fodns is not None
        query = dns.message.make_query(fqdn, qtype)
        answers = []
        for reply in ask_every_worker(self.fodns, query):
            answers.append(
                {
                    (rrset.name.to_text().lower(), dns.rdatatype.to_text(rrset.rdtype)): (
                        rrset.ttl,
                        frozenset(rdata.to_text() for rdata in rrset),
                    )
                    for rrset in reply.answer
                }
            )
        assert all(answer == answers[0] for answer in answers), answers
        return answers[0]

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
def route53_rig(directory: Path, workers: int = 1) -> Iterator[Rig]:
    """moto, the proxy in front of it and one hosted zone for ZONE; fodns (with `workers`
    DNS processes) is started by the test (Rig.start_fodns). Every fodns started is
    stopped here even when the test failed, and (unless killed on purpose) must have
    shut down cleanly."""
    moto = MotoServer()
    moto.start()
    proxy = RecordingProxy(moto.url)
    proxy.start()
    running = Rig(moto, proxy, moto.create_zone(ZONE), directory, workers=workers)
    try:
        yield running
    finally:
        # A Route53 call held by a test's delay must not hold up fodns's shutdown.
        proxy.set_delay(0.0)
        exits = [fodns.stop() for fodns in running.started]
        proxy.stop()
        moto.stop()
    assert exits == [0] * len(exits), f"fodns did not shut down cleanly: {exits}"


def add_apps(rig: Rig) -> None:
    rig.api("POST", "/v1/apps", {"name": "eu", "web_servers": ["192.0.2.10", "192.0.2.11"]})
    rig.api("POST", "/v1/apps", {"name": "us", "load_balancer": ["lb.us.example.com"]})
