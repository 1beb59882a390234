"""The Route53 mirror end to end: a real fodns, a real boto3 inside it, a real
moto_server on loopback behind a recording proxy that can also fake outages."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import (
    EXAMPLE_ZONE,
    FodnsProcess,
    api_request,
    start_fodns,
    wait_for,
    write_config,
)
from tests.route53_emulator import MotoServer, RecordingProxy, restart_route53_empty

ZONE = "fo.example.net"
TOKEN = "route53-test-token"
MIRROR_WAIT = 3.0  # the promise: a change is in Route53 within 3 s
AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_EC2_METADATA_DISABLED": "true",  # never look for an instance role off loopback
    "NO_PROXY": "127.0.0.1",
}


@dataclass
class Rig:
    moto: MotoServer
    proxy: RecordingProxy
    zone_id: str
    directory: Path
    fodns: FodnsProcess | None = None

    def start_fodns(self, full_sync_interval: int = 3600) -> FodnsProcess:
        config = write_config(
            self.directory,
            [(ZONE, EXAMPLE_ZONE)],
            zone_extra=f'route53_hosted_zone_id = "{self.zone_id}"\n',
            extra=(
                f'[route53]\nenabled = true\nendpoint_url = "{self.proxy.url}"\n'
                f"full_sync_interval = {full_sync_interval}\n"
            ),
        )
        self.fodns = start_fodns(
            "--config", str(config), env={"FODNS_ADMIN_TOKEN": TOKEN, **AWS_ENV}
        )
        return self.fodns

    def api(self, method: str, path: str, body: object = None) -> Any:
        assert self.fodns is not None
        status, payload = api_request(self.fodns, method, path, body, TOKEN)
        assert status in (200, 201, 204), (method, path, status, payload)
        return payload

    def owned(self) -> dict[tuple[str, str], tuple[int, frozenset[str]]]:
        """Route53's A/AAAA/CNAME record sets, as the moto API lists them."""
        return {
            key: value
            for key, value in self.moto.records(self.zone_id).items()
            if key[1] in ("A", "AAAA", "CNAME")
        }

    def expected(self) -> dict[tuple[str, str], tuple[int, frozenset[str]]]:
        """Every group's answer, as fodns's API shows it."""
        wanted: dict[tuple[str, str], tuple[int, set[str]]] = {}
        for group in self.api("GET", "/v1/groups")["groups"]:
            for record in group["answer"]:
                key = (f"{group['fqdn']}.", record["type"])
                wanted.setdefault(key, (group["ttl"], set()))[1].add(record["data"])
        return {key: (ttl, frozenset(values)) for key, (ttl, values) in wanted.items()}

    def mirrored(self, timeout: float = MIRROR_WAIT, extra: dict[Any, Any] | None = None) -> bool:
        """Whether Route53 comes to hold exactly fodns's answers (plus `extra`) in time."""
        want = {**self.expected(), **(extra or {})}
        return wait_for(lambda: self.owned() == want, timeout)


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    moto = MotoServer()
    moto.start()
    proxy = RecordingProxy(moto.url)
    proxy.start()
    running = Rig(moto, proxy, moto.create_zone(ZONE), tmp_path)
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


def manual_record(rig: Rig, name: str, rtype: str, value: str, action: str = "UPSERT") -> None:
    """A record someone else manages in the hosted zone (straight to moto)."""
    rig.moto.client().change_resource_record_sets(
        HostedZoneId=rig.zone_id,
        ChangeBatch={
            "Changes": [
                {
                    "Action": action,
                    "ResourceRecordSet": {
                        "Name": name,
                        "Type": rtype,
                        "TTL": 300,
                        "ResourceRecords": [{"Value": value}],
                    },
                }
            ]
        },
    )


def test_create_switch_web_head_change_and_delete_are_mirrored(rig: Rig) -> None:
    rig.start_fodns()
    add_apps(rig)
    rig.api("POST", "/v1/groups", {"label": "shop", "primary": "eu", "backup": "us"})
    assert rig.mirrored()
    assert rig.owned()[("shop.fo.example.net.", "A")] == (30, {"192.0.2.10", "192.0.2.11"})
    rig.api("POST", "/v1/groups/shop/switch", {"to": "backup"})
    assert rig.mirrored()
    assert rig.owned() == {("shop.fo.example.net.", "CNAME"): (30, {"lb.us.example.com."})}
    rig.api("PATCH", "/v1/apps/us", {"load_balancer": [], "web_servers": ["2001:db8::5"]})
    assert rig.mirrored()
    assert rig.owned() == {("shop.fo.example.net.", "AAAA"): (30, {"2001:db8::5"})}
    rig.api("PATCH", "/v1/groups/shop", {"ttl": 60})
    assert rig.mirrored()
    rig.api("PATCH", "/v1/groups/shop", {"primary": None, "backup": None})
    rig.api("DELETE", "/v1/groups/shop")
    assert rig.mirrored()
    assert rig.owned() == {}
    # Once the last batch is INSYNC, nothing is pending and nothing failed.
    assert wait_for(lambda: health(rig)["zones"][ZONE]["pending_events"] == 0, 5)
    assert health(rig)["errors"] == {}


def test_a_sync_touches_only_what_fodns_owns(rig: Rig) -> None:
    # Someone else's records, one of them at a name fodns will use, of a type it never serves.
    manual_record(rig, "manual.fo.example.net.", "A", "203.0.113.1")
    manual_record(rig, "shop.fo.example.net.", "TXT", '"verification=abc"')
    rig.start_fodns()
    add_apps(rig)
    rig.api("POST", "/v1/groups", {"label": "shop", "primary": "eu", "backup": "us"})
    rig.api("POST", "/v1/groups", {"label": "gone", "primary": "eu"})
    manual = {("manual.fo.example.net.", "A"): (300, frozenset({"203.0.113.1"}))}
    assert rig.mirrored(extra=manual)
    rig.api("PATCH", "/v1/groups/gone", {"primary": None})
    rig.api("DELETE", "/v1/groups/gone")
    assert rig.mirrored(extra=manual)
    # Route53 drifts behind fodns's back: a stale answer for a live group, and a record
    # left for the deleted group's label (fodns owns that name for ever).
    manual_record(rig, "shop.fo.example.net.", "A", "192.0.2.99")
    manual_record(rig, "gone.fo.example.net.", "A", "192.0.2.98")
    result = client("route53", "sync", rig=rig)
    assert "~ shop.fo.example.net." in result and "- gone.fo.example.net." in result, result
    assert rig.mirrored(extra=manual)
    everything = rig.moto.records(rig.zone_id)
    assert everything[("shop.fo.example.net.", "TXT")] == (300, {'"verification=abc"'})
    assert everything[("manual.fo.example.net.", "A")] == (300, {"203.0.113.1"})
    assert ("fo.example.net.", "SOA") in everything and ("fo.example.net.", "NS") in everything


def test_plan_shows_a_readable_diff_and_changes_nothing(rig: Rig) -> None:
    rig.start_fodns(full_sync_interval=0)
    add_apps(rig)
    rig.api("POST", "/v1/groups", {"label": "shop", "primary": "eu", "backup": "us"})
    assert rig.mirrored()
    manual_record(rig, "shop.fo.example.net.", "A", "192.0.2.99")
    before = rig.moto.records(rig.zone_id)
    batches_before = len(rig.proxy.change_batches())
    plan = client("route53", "plan", rig=rig)
    assert plan.splitlines() == [
        f"zone {ZONE} (hosted zone {rig.zone_id}):",
        "  ~ shop.fo.example.net. 300 A 192.0.2.99",
        "    -> shop.fo.example.net. 30 A 192.0.2.10 192.0.2.11",
        "  0 to add, 1 to change, 0 to remove (to apply); 0 record sets already equal",
    ]
    as_json = json.loads(client("route53", "plan", "--json", rig=rig))
    assert as_json[0]["change"][0]["after"]["values"] == ["192.0.2.10", "192.0.2.11"]
    time.sleep(0.5)  # the mirror's own polling must not fix it either: nothing changed
    assert rig.moto.records(rig.zone_id) == before
    assert len(rig.proxy.change_batches()) == batches_before


def test_an_outage_loses_nothing_and_ends_equal(rig: Rig) -> None:
    rig.start_fodns()
    add_apps(rig)
    for label in ("a", "b", "c"):
        rig.api("POST", "/v1/groups", {"label": label, "primary": "eu", "backup": "us"})
    assert rig.mirrored()
    # Route53 unreachable: switches go on in fodns and wait.
    rig.proxy.set_down(True)
    rig.api("POST", "/v1/groups/a/switch", {"to": "backup"})
    rig.api("POST", "/v1/groups/b/switch", {"to": "backup"})
    assert rig.fodns is not None
    assert wait_for(lambda: health(rig)["errors"].get("ServiceUnavailable", 0) > 0, 5)
    assert health(rig)["zones"][ZONE]["pending_events"] > 0
    metrics = rig.fodns.http_get("/metrics")[1]
    assert 'fodns_route53_errors_total{kind="ServiceUnavailable"}' in metrics
    # Back, but empty: Route53 lost every record (same hosted zone id).
    restart_route53_empty(rig.moto, rig.proxy, [ZONE])
    rig.proxy.set_down(False)
    assert rig.mirrored(timeout=30)  # the backoff's wait, then a full sync
    assert wait_for(lambda: health(rig)["zones"][ZONE]["pending_events"] == 0, 5)


def test_route53_coming_back_with_stale_data_is_corrected(rig: Rig) -> None:
    rig.start_fodns(full_sync_interval=2)  # no change meanwhile: the periodic comparison finds it
    add_apps(rig)
    rig.api("POST", "/v1/groups", {"label": "shop", "primary": "eu", "backup": "us"})
    assert rig.mirrored()
    zone_ids = restart_route53_empty(rig.moto, rig.proxy, [ZONE])
    assert zone_ids[ZONE] == rig.zone_id
    manual_record(rig, "shop.fo.example.net.", "CNAME", "stale.example.com.")
    manual_record(rig, "other.fo.example.net.", "A", "203.0.113.7")  # not fodns's
    assert rig.mirrored(
        timeout=15, extra={("other.fo.example.net.", "A"): (300, frozenset({"203.0.113.7"}))}
    )


def test_changes_made_while_fodns_was_killed_are_replayed(rig: Rig) -> None:
    running = rig.start_fodns()
    add_apps(rig)
    rig.api("POST", "/v1/groups", {"label": "shop", "primary": "eu", "backup": "us"})
    assert rig.mirrored()
    rig.proxy.set_down(True)
    rig.api("POST", "/v1/groups/shop/switch", {"to": "backup"})  # acknowledged, not mirrored
    running.process.kill()
    running.process.wait()
    rig.proxy.set_down(False)
    rig.start_fodns()
    assert rig.mirrored()
    assert rig.owned() == {("shop.fo.example.net.", "CNAME"): (30, {"lb.us.example.com."})}


def test_a_burst_of_2000_switches_is_few_batches_never_two_in_flight(rig: Rig) -> None:
    rig.start_fodns()
    add_apps(rig)
    labels = [f"g{i}" for i in range(20)]
    for label in labels:
        rig.api("POST", "/v1/groups", {"label": label, "primary": "eu", "backup": "us"})
    assert rig.mirrored()
    rig.proxy.clear()

    def switch_many(label: str) -> None:
        for count in range(100):
            rig.api(
                "POST",
                f"/v1/groups/{label}/switch",
                {"to": "backup" if count % 2 == 0 else "primary"},
            )

    threads = [threading.Thread(target=switch_many, args=(label,)) for label in labels]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert rig.mirrored(timeout=10)
    batches = rig.proxy.change_batches(successful_only=True)
    print(f"2,000 switches mirrored in {len(batches)} change batches")
    assert len(batches) <= 200, len(batches)  # one per switch would be 2,000
    assert rig.proxy.max_changes_in_flight() == 1


def health(rig: Rig) -> dict[str, Any]:
    assert rig.fodns is not None
    return json.loads(rig.fodns.http_get("/healthz")[1])["route53"]  # type: ignore[no-any-return]


def client(*args: str, rig: Rig) -> str:
    assert rig.fodns is not None
    result = subprocess.run(
        [sys.executable, "-m", "fodns", *args],
        env={
            "FODNS_API": f"http://127.0.0.1:{rig.fodns.api_port}",
            "FODNS_ADMIN_TOKEN": TOKEN,
            "PATH": "/usr/bin:/bin",
        },
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout
