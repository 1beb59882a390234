"""The Route53 test harness itself, against a real `moto_server` on loopback: zone ids
survive a restart, the proxy forwards and records, and its simulated failures reach boto3
as the errors Route53 would send."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.config import Config
from botocore.exceptions import ClientError, ReadTimeoutError

from tests.route53_emulator import (
    MotoServer,
    ParsedChange,
    RecordingProxy,
    restart_route53_empty,
)
from tests.support import free_port, wait_for

# moto's own zone records; everything else in a fresh zone came from the test.
APEX_TYPES = {"NS", "SOA"}


@pytest.fixture(scope="module")
def moto() -> Iterator[MotoServer]:
    with MotoServer() as server:
        yield server


@pytest.fixture
def proxy(moto: MotoServer) -> Iterator[RecordingProxy]:
    with RecordingProxy(moto.url) as recording_proxy:
        yield recording_proxy


def single_attempt_client(moto: MotoServer, proxy: RecordingProxy) -> Any:
    # total_max_attempts, not max_attempts: botocore reads max_attempts as *retries*, so
    # max_attempts=1 still makes two requests (and sleeps between them).
    return moto.client(proxy.url, Config(retries={"total_max_attempts": 1}))


def upsert(name: str, values: list[str], ttl: int = 60) -> dict[str, Any]:
    return {
        "Action": "UPSERT",
        "ResourceRecordSet": {
            "Name": name,
            "Type": "A",
            "TTL": ttl,
            "ResourceRecords": [{"Value": value} for value in values],
        },
    }


def change(client: Any, zone_id: str, *changes: dict[str, Any]) -> str:
    response = client.change_resource_record_sets(
        HostedZoneId=zone_id, ChangeBatch={"Changes": list(changes)}
    )
    change_id: str = response["ChangeInfo"]["Id"]
    return change_id


def test_restart_gives_the_same_zone_id_and_no_records(moto: MotoServer) -> None:
    moto.restart()
    first_id = moto.create_zone("restart.test")
    change(moto.client(), first_id, upsert("www.restart.test.", ["192.0.2.1"]))
    assert ("www.restart.test.", "A") in moto.records(first_id)

    moto.restart()
    second_id = moto.create_zone("restart.test")

    assert second_id == first_id
    assert {record_type for _name, record_type in moto.records(second_id)} == APEX_TYPES


def test_restart_route53_empty_holds_the_proxy_down_and_keeps_ids(
    moto: MotoServer, proxy: RecordingProxy
) -> None:
    before = restart_route53_empty(moto, proxy, ["a.test", "b.test"])
    after = restart_route53_empty(moto, proxy, ["a.test", "b.test"])

    assert after == before
    assert before["a.test"] != before["b.test"]
    # Back up afterwards: a request through the proxy reaches moto again.
    assert moto.client(proxy.url).get_hosted_zone(Id=after["a.test"])["HostedZone"]


def test_upsert_through_the_proxy_is_applied_and_recorded(
    moto: MotoServer, proxy: RecordingProxy
) -> None:
    zone_id = moto.create_zone("upsert.test")
    client = moto.client(proxy.url)

    change_id = change(client, zone_id, upsert("WWW.upsert.test.", ["192.0.2.2", "192.0.2.1"]))
    status = client.get_change(Id=change_id)["ChangeInfo"]["Status"]

    assert status == "INSYNC"
    assert moto.records(zone_id)[("www.upsert.test.", "A")] == (
        60,
        frozenset({"192.0.2.1", "192.0.2.2"}),
    )
    [recorded] = proxy.calls("ChangeResourceRecordSets")
    assert recorded.status == 200
    assert recorded.started <= recorded.finished
    assert proxy.change_batches() == [
        [ParsedChange("UPSERT", "WWW.upsert.test.", "A", 60, ["192.0.2.2", "192.0.2.1"])]
    ]
    assert [call.status for call in proxy.calls("GetChange")] == [200]


def test_each_batch_gets_its_own_change_id(moto: MotoServer, proxy: RecordingProxy) -> None:
    # moto alone answers every batch with the same constant id.
    zone_id = moto.create_zone("ids.test")
    client = moto.client(proxy.url)

    first = change(client, zone_id, upsert("a.ids.test.", ["192.0.2.1"]))
    second = change(client, zone_id, upsert("b.ids.test.", ["192.0.2.1"]))

    assert first != second
    assert client.get_change(Id=second)["ChangeInfo"]["Id"].endswith(second.split("/")[-1])


def test_sequential_change_and_get_change_is_one_in_flight(
    moto: MotoServer, proxy: RecordingProxy
) -> None:
    zone_id = moto.create_zone("serial.test")
    client = moto.client(proxy.url)

    for index in range(3):
        change_id = change(client, zone_id, upsert(f"h{index}.serial.test.", ["192.0.2.1"]))
        assert client.get_change(Id=change_id)["ChangeInfo"]["Status"] == "INSYNC"

    assert len(proxy.calls("ChangeResourceRecordSets")) == 3
    assert proxy.max_changes_in_flight() == 1


def test_batches_submitted_before_confirmation_overlap(
    moto: MotoServer, proxy: RecordingProxy
) -> None:
    zone_id = moto.create_zone("overlap.test")
    client = moto.client(proxy.url)

    first = change(client, zone_id, upsert("a.overlap.test.", ["192.0.2.1"]))
    second = change(client, zone_id, upsert("b.overlap.test.", ["192.0.2.1"]))
    client.get_change(Id=first)
    client.get_change(Id=second)

    assert proxy.max_changes_in_flight() == 2


def test_records_follows_pagination(moto: MotoServer) -> None:
    zone_id = moto.create_zone("pages.test")
    change(
        moto.client(),
        zone_id,
        *(upsert(f"h{index}.pages.test.", [f"192.0.2.{index}"]) for index in range(5)),
    )

    in_small_pages = moto.records(zone_id, page_size=2)

    assert len(in_small_pages) == 5 + len(APEX_TYPES)
    assert in_small_pages == moto.records(zone_id)
    assert in_small_pages[("h3.pages.test.", "A")] == (60, frozenset({"192.0.2.3"}))


def test_down_answers_service_unavailable_without_reaching_moto(
    moto: MotoServer, proxy: RecordingProxy
) -> None:
    zone_id = moto.create_zone("down.test")
    client = single_attempt_client(moto, proxy)

    proxy.set_down(True)
    with pytest.raises(ClientError) as refused:
        change(client, zone_id, upsert("www.down.test.", ["192.0.2.1"]))

    assert refused.value.response["Error"]["Code"] == "ServiceUnavailable"
    assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 503
    assert ("www.down.test.", "A") not in moto.records(zone_id)
    assert [call.status for call in proxy.calls("ChangeResourceRecordSets")] == [503]
    assert proxy.max_changes_in_flight() == 0

    proxy.set_down(False)
    change(client, zone_id, upsert("www.down.test.", ["192.0.2.1"]))
    assert ("www.down.test.", "A") in moto.records(zone_id)


def test_throttle_refuses_only_the_next_requests(moto: MotoServer, proxy: RecordingProxy) -> None:
    zone_id = moto.create_zone("throttle.test")
    client = single_attempt_client(moto, proxy)

    proxy.set_throttle(1)
    with pytest.raises(ClientError) as refused:
        client.list_resource_record_sets(HostedZoneId=zone_id)
    client.list_resource_record_sets(HostedZoneId=zone_id)

    assert refused.value.response["Error"]["Code"] == "Throttling"
    assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert [call.status for call in proxy.calls("ListResourceRecordSets")] == [400, 200]


def test_throttle_can_name_the_code_and_the_action(moto: MotoServer, proxy: RecordingProxy) -> None:
    zone_id = moto.create_zone("prior.test")
    client = single_attempt_client(moto, proxy)

    proxy.set_throttle(1, code="PriorRequestNotComplete", action="ChangeResourceRecordSets")
    client.list_resource_record_sets(HostedZoneId=zone_id)  # another action: forwarded
    with pytest.raises(ClientError) as refused:
        change(client, zone_id, upsert("www.prior.test.", ["192.0.2.1"]))
    change(client, zone_id, upsert("www.prior.test.", ["192.0.2.1"]))

    assert refused.value.response["Error"]["Code"] == "PriorRequestNotComplete"
    assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert [call.status for call in proxy.calls("ChangeResourceRecordSets")] == [400, 200]


def test_unreachable_target_is_a_bad_gateway(moto: MotoServer, proxy: RecordingProxy) -> None:
    client = single_attempt_client(moto, proxy)
    # Nothing listens there: the port was free a moment ago and is closed again.
    proxy.retarget(f"http://127.0.0.1:{free_port()}")

    with pytest.raises(ClientError) as refused:
        client.list_hosted_zones()

    assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 502
    proxy.retarget(moto.url)
    client.list_hosted_zones()


def test_only_loopback_targets_are_accepted() -> None:
    with pytest.raises(ValueError, match=r"127\.0\.0\.1"):
        RecordingProxy("http://192.0.2.1:8080")


def test_a_create_of_an_existing_record_set_is_refused_as_route53_does(
    moto: MotoServer, proxy: RecordingProxy
) -> None:
    zone_id = moto.create_zone("create.test")
    client = single_attempt_client(moto, proxy)
    change(client, zone_id, upsert("www.create.test.", ["192.0.2.1"]))
    create = {**upsert("www.create.test.", ["192.0.2.2"]), "Action": "CREATE"}

    with pytest.raises(ClientError) as refused:
        change(client, zone_id, create)

    assert refused.value.response["Error"]["Code"] == "InvalidChangeBatch"
    # moto alone would now hold two A record sets at that name.
    assert moto.records(zone_id)[("www.create.test.", "A")] == (60, frozenset({"192.0.2.1"}))
    # Deleted first in the same batch, it may be created again.
    delete = {**upsert("www.create.test.", ["192.0.2.1"]), "Action": "DELETE"}
    change(client, zone_id, delete, create)
    assert moto.records(zone_id)[("www.create.test.", "A")] == (60, frozenset({"192.0.2.2"}))


def test_a_cname_beside_other_records_is_refused_as_route53_does(
    moto: MotoServer, proxy: RecordingProxy
) -> None:
    zone_id = moto.create_zone("cname.test")
    client = single_attempt_client(moto, proxy)
    change(client, zone_id, upsert("www.cname.test.", ["192.0.2.1"]))
    cname = {
        "Action": "UPSERT",
        "ResourceRecordSet": {
            "Name": "www.cname.test.",
            "Type": "CNAME",
            "TTL": 60,
            "ResourceRecords": [{"Value": "elsewhere.example."}],
        },
    }

    with pytest.raises(ClientError) as refused:
        change(client, zone_id, cname)

    assert refused.value.response["Error"]["Code"] == "InvalidChangeBatch"
    assert ("www.cname.test.", "CNAME") not in moto.records(zone_id)


def test_delay_and_failing_paths_touch_only_what_they_name(
    moto: MotoServer, proxy: RecordingProxy
) -> None:
    failing = moto.create_zone("failing.test")
    working = moto.create_zone("working.test")
    client = single_attempt_client(moto, proxy)

    proxy.fail_path(failing)
    with pytest.raises(ClientError) as refused:
        client.list_resource_record_sets(HostedZoneId=failing)
    assert refused.value.response["Error"]["Code"] == "ServiceUnavailable"
    client.list_resource_record_sets(HostedZoneId=working)
    proxy.fail_path(failing, None)
    client.list_resource_record_sets(HostedZoneId=failing)

    proxy.set_delay(2.0, action="ListResourceRecordSets")
    proxy.clear()
    client.list_resource_record_sets(HostedZoneId=working)
    change(client, working, upsert("fast.working.test.", ["192.0.2.1"]))
    listed, changed = proxy.calls("ListResourceRecordSets"), proxy.calls("ChangeResourceRecordSets")
    assert listed[0].finished - listed[0].started >= 2.0
    assert changed[0].finished - changed[0].started < 2.0  # not delayed (moto takes ms)


def test_a_delay_is_counted_while_it_lasts_and_ends_when_lifted(
    moto: MotoServer, proxy: RecordingProxy
) -> None:
    zone_id = moto.create_zone("slow.test")
    client = single_attempt_client(moto, proxy)
    proxy.set_delay(60.0, action="ChangeResourceRecordSets")
    answered: list[str] = []
    sender = threading.Thread(
        target=lambda: answered.append(
            change(client, zone_id, upsert("www.slow.test.", ["192.0.2.1"]))
        )
    )
    sender.start()
    assert wait_for(lambda: proxy.delayed_now() == 1, 10)
    assert ("www.slow.test.", "A") not in moto.records(zone_id)  # held before moto

    proxy.set_delay(0.0)  # lifted: the waiting request goes on at once
    sender.join(10)
    assert answered and proxy.delayed_now() == 0
    assert ("www.slow.test.", "A") in moto.records(zone_id)


def test_a_late_answer_comes_after_the_change_is_made(
    moto: MotoServer, proxy: RecordingProxy
) -> None:
    zone_id = moto.create_zone("late.test")
    # The client gives up long before the answer comes: the change is made regardless.
    client = moto.client(proxy.url, Config(retries={"total_max_attempts": 1}, read_timeout=1))
    proxy.set_delay(60.0, action="ChangeResourceRecordSets", after_forwarding=True)

    with pytest.raises(ReadTimeoutError):
        change(client, zone_id, upsert("www.late.test.", ["192.0.2.1"]))

    assert ("www.late.test.", "A") in moto.records(zone_id)
    assert proxy.delayed_now() == 1
    proxy.set_delay(0.0)
    assert wait_for(lambda: proxy.delayed_now() == 0, 10)


def test_a_delete_must_name_the_record_set_as_it_is(
    moto: MotoServer, proxy: RecordingProxy
) -> None:
    zone_id = moto.create_zone("delete.test")
    client = single_attempt_client(moto, proxy)
    change(client, zone_id, upsert("www.delete.test.", ["192.0.2.1", "192.0.2.2"]))
    change(client, zone_id, upsert("www.delete.test.", ["192.0.2.3"]))  # edited since
    stale = {**upsert("www.delete.test.", ["192.0.2.1", "192.0.2.2"]), "Action": "DELETE"}
    missing = {**upsert("nothing.delete.test.", ["192.0.2.1"]), "Action": "DELETE"}
    other_ttl = {**upsert("www.delete.test.", ["192.0.2.3"], ttl=30), "Action": "DELETE"}

    for refused_change, why in [
        (stale, "do not match the current values"),
        (missing, "but it was not found"),
        (other_ttl, "do not match the current values"),
    ]:
        with pytest.raises(ClientError) as refused:
            change(client, zone_id, refused_change)
        assert refused.value.response["Error"]["Code"] == "InvalidChangeBatch"
        assert why in refused.value.response["Error"]["Message"]
    # moto alone would have deleted it on the first of those.
    assert moto.records(zone_id)[("www.delete.test.", "A")] == (60, frozenset({"192.0.2.3"}))
    exact = {**upsert("www.delete.test.", ["192.0.2.3"]), "Action": "DELETE"}
    change(client, zone_id, exact)
    assert ("www.delete.test.", "A") not in moto.records(zone_id)


def test_a_batch_over_route53s_limits_is_refused(moto: MotoServer, proxy: RecordingProxy) -> None:
    zone_id = moto.create_zone("limits.test")
    client = single_attempt_client(moto, proxy)
    addresses = [f"198.18.{i // 256}.{i % 256}" for i in range(501)]

    with pytest.raises(ClientError) as refused:
        change(client, zone_id, upsert("big.limits.test.", addresses))  # 1,002 as an UPSERT

    assert refused.value.response["Error"]["Code"] == "InvalidChangeBatch"
    change(client, zone_id, upsert("big.limits.test.", addresses[:500]))  # exactly 1,000
    assert len(moto.records(zone_id)[("big.limits.test.", "A")][1]) == 500


def test_a_record_set_deleted_can_be_created_again_beside_others(
    moto: MotoServer, proxy: RecordingProxy
) -> None:
    zone_id = moto.create_zone("again.test")
    client = single_attempt_client(moto, proxy)
    create = {**upsert("www.again.test.", ["192.0.2.1"]), "Action": "CREATE"}
    delete = {**create, "Action": "DELETE"}
    change(client, zone_id, create)
    beside = upsert("www.again.test.", ["2001:db8::1"])
    beside["ResourceRecordSet"]["Type"] = "AAAA"  # type: ignore[index]
    change(client, zone_id, beside)
    change(client, zone_id, delete)

    change(client, zone_id, create)  # moto alone: "already exists"

    assert moto.records(zone_id)[("www.again.test.", "A")] == (60, frozenset({"192.0.2.1"}))
