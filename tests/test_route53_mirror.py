"""The Route53 mirror's thread in this process, on a real store and a real boto3 client
against moto_server: whatever happens to a request handed to it, the thread lives on."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from fodns.config import Route53Config, ZoneConfig
from fodns.route53 import Route53Mirror
from fodns.store import Store, ZoneDefaults
from tests.route53_emulator import MotoServer, RecordingProxy
from tests.route53_rig import AWS_ENV, MIRROR_WAIT, ZONE
from tests.support import EXAMPLE_ZONE, wait_for


@pytest.fixture
def moto() -> Iterator[MotoServer]:
    with MotoServer() as server:
        yield server


def test_a_cancelled_request_never_ends_the_mirror(
    moto: MotoServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in AWS_ENV.items():
        monkeypatch.setenv(name, value)
    zone_id = moto.create_zone(ZONE)
    with (
        RecordingProxy(moto.url) as proxy,
        Store(tmp_path / "fodns.db", {ZONE: ZoneDefaults(1)}) as store,
    ):
        mirror = Route53Mirror(
            store,
            Route53Config(enabled=True, endpoint_url=proxy.url),
            [ZoneConfig(ZONE, EXAMPLE_ZONE, route53_hosted_zone_id=zone_id)],
        )
        # A caller gives up on its plan before the thread gets to it (an API request
        # that timed out, a client that went away).
        abandoned = mirror.request("plan")
        assert abandoned.cancel()
        mirror.start()
        try:
            store.create_app("test", "eu", web_servers=["192.0.2.10"])
            store.create_group("test", ZONE, "shop", primary="eu")
            mirror.changed()
            shop = ("shop.fo.example.net.", "A")
            assert wait_for(lambda: shop in moto.records(zone_id), MIRROR_WAIT)
            assert mirror.alive()
            answered = mirror.request("plan")
            assert answered.result(timeout=MIRROR_WAIT)[0].empty
        finally:
            mirror.stop()
