"""ACME DNS-01 through fodns, over real HTTP and real DNS on loopback: the acme-dns API's
refusals as acme-dns gives them, its two values per name, registration by token or open
and rate limited, every DNS worker answering a value as soon as /update replies, IXFR
carrying it to a real Knot secondary, the admin API's registrations tied to groups with
the check of the customer's CNAME against a real authoritative server (fodns itself,
serving the customer's zone), credentials kept only as hashes, and the trimming of old
update events."""

from __future__ import annotations

import hashlib
import json
import re
import signal
import sqlite3
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import dns.exception
import dns.message
import dns.query
import dns.rcode
import dns.zone
import pytest

from fodns.acme import AcmePlace, new_credentials
from fodns.config import Route53Config, ZoneConfig, load_config
from fodns.errors import ConfigError
from fodns.model import Event
from fodns.route53 import Route53Mirror
from fodns.store import Store, ZoneDefaults
from fodns.webhookmodel import event_kind
from tests.route53_emulator import MotoServer, RecordingProxy
from tests.route53_rig import AWS_ENV, MIRROR_WAIT
from tests.secondaries import ZONE, KnotSecondary
from tests.support import (
    EXAMPLE_ZONE,
    REPOSITORY,
    Api,
    FodnsProcess,
    answer_data,
    ask_every_worker,
    free_port,
    run_cli,
    serving,
    start_fodns,
    wait_for,
    write_config,
)
from tests.support.acme import Account, AcmeClient, acme_table
from tests.support.transfer import transfer_options
from tests.support.workers import stopped, worker_pids

TOKEN = "acme-test-admin-token-5b1e"
StartFodns = Callable[..., FodnsProcess]
CUSTOMER = "shop.test"
TTL = 10
# DNS-01 values as an ACME client computes them: 43 characters of base64url.
V1, V2, V3 = ("A" * 42 + "1", "B" * 42 + "2", "C-_" * 14 + "3")
CUSTOMER_ZONE = f"""$ORIGIN {CUSTOMER}.
$TTL 300
@    IN SOA ns1.{CUSTOMER}. hostmaster.{CUSTOMER}. 1 7200 3600 1209600 300
     IN NS  ns1.{CUSTOMER}.
ns1  IN A   192.0.2.53
_acme-challenge.wrong IN CNAME elsewhere.example.org.
"""


class Served:
    """The module's fodns: the example zone holds the challenges, and the customer's
    zone is served beside it, so [acme] resolver (fodns's own DNS port) answers for the
    customer's _acme-challenge names as their authoritative server would."""

    def __init__(self, server: FodnsProcess, folder: Path) -> None:
        self.server = server
        self.folder = folder
        self.admin = Api(server, TOKEN)
        self.acme = AcmeClient(server)

    def token(self, name: str, scope: str, **limits: Any) -> str:
        made = self.admin.ok("POST", "/v1/tokens", {"name": name, "scope": scope, **limits}, 201)
        return str(made["token"])

    def txt(self, name: str) -> set[str]:
        reply = self.server.udp(dns.message.make_query(name, "TXT"))
        return {value.strip('"') for value in answer_data(reply)}

    def serial(self) -> int:
        reply = self.server.udp(dns.message.make_query("fo.example.net", "SOA"))
        return int(reply.answer[0][0].serial)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    folder = tmp_path_factory.mktemp("acme")
    (folder / f"{CUSTOMER}.zone").write_text(CUSTOMER_ZONE)
    port = free_port()
    config = write_config(
        folder,
        [("fo.example.net", EXAMPLE_ZONE), (CUSTOMER, folder / f"{CUSTOMER}.zone")],
        zone_extra='allow_transfer = [{ address = "127.0.0.0/8" }]\n',
        extra=acme_table(zone="fo.example.net", ttl=TTL, resolver=f"127.0.0.1:{port}"),
    )
    running = start_fodns(
        "--config",
        str(config),
        "--dns-listen",
        f"127.0.0.1:{port}",
        env={"FODNS_ADMIN_TOKEN": TOKEN},
    )
    with serving(running) as server:
        yield Served(server, folder)


# ---- the acme-dns API: refusals as acme-dns gives them ------------------------------------


def test_every_refusal_of_an_update_is_acme_dns_own_and_changes_nothing(served: Served) -> None:
    acme = served.acme
    assert acme.call("GET", "/health")[0] == 200
    mine, other = acme.account(TOKEN), acme.account(TOKEN)
    assert acme.update(mine, V1) == (200, {"txt": V1})
    forbidden = (401, {"error": "forbidden"})
    # Unknown user, wrong key, another registration's subdomain: one answer for all, so a
    # caller learns nothing of which it got wrong.
    assert acme.update(mine, V2, user=str(uuid.uuid4())) == forbidden
    assert acme.update(mine, V2, user="not-a-uuid") == forbidden
    assert acme.update(mine, V2, key=other.password) == forbidden
    assert acme.update(mine, V2, key="x" * 40) == forbidden
    assert acme.update(mine, V2, key="") == forbidden
    assert acme.update(mine, V2, subdomain=other.subdomain) == forbidden
    # Past the credentials, what the body says.
    assert acme.update(mine, V2, body=b"{not json") == (400, {"error": "malformed_json"})
    assert acme.update(mine, V2, body=b"[1, 2]") == (400, {"error": "malformed_json"})
    assert acme.update(mine, V2, subdomain=7) == (400, {"error": "bad_subdomain"})
    bad_txt = (400, {"error": "bad_txt"})
    for value in ("A" * 42, "A" * 44, "A" * 42 + "=", "A" * 42 + "+", "A" * 42 + "/", "", None):
        assert acme.update(mine, value) == bad_txt, value
    # None of them changed anything: the one value set is the one served.
    assert served.txt(mine.fulldomain) == {V1}
    assert served.txt(other.fulldomain) == set()
    refused = served.server.log_events("acme_update_refused")
    assert {event["reason"] for event in refused} >= {
        "unknown user",
        "wrong key",
        "another registration's subdomain",
    }
    assert not [line for line in served.server.stderr_lines if mine.password in line]


def test_allowfrom_is_checked_against_the_tcp_peer(served: Served) -> None:
    acme = served.acme
    elsewhere = acme.account(TOKEN, ["127.0.0.2/32"])
    assert elsewhere.allowfrom == ["127.0.0.2/32"]
    assert acme.update(elsewhere, V1) == (401, {"error": "forbidden"})
    assert served.txt(elsewhere.fulldomain) == set()
    here = acme.account(TOKEN, ["192.0.2.0/24", "127.0.0.1"])
    assert here.allowfrom == ["192.0.2.0/24", "127.0.0.1/32"]
    assert acme.update(here, V1) == (200, {"txt": V1})
    for bad in (["not-a-network"], ["127.0.0.1/33"], "127.0.0.1", [7]):
        status, reply, _ = acme.call(
            "POST", "/register", {"allowfrom": bad}, {"Authorization": f"Bearer {TOKEN}"}
        )
        assert (status, reply) == (400, {"error": "invalid_allowfrom_cidr"}), bad


def test_two_values_are_kept_a_third_replaces_the_oldest_and_each_moves_the_serial(
    served: Served,
) -> None:
    acme = served.acme
    account = acme.account(TOKEN)
    serial = served.serial()
    assert acme.update(account, V1)[0] == 200
    assert served.txt(account.fulldomain) == {V1}
    assert acme.update(account, V2)[0] == 200
    assert served.txt(account.fulldomain) == {V1, V2}
    assert acme.update(account, V3)[0] == 200
    assert served.txt(account.fulldomain) == {V2, V3}
    assert served.serial() == serial + 3
    # A value it holds becomes the newer of the two, and nothing DNS answers moves.
    assert acme.update(account, V2) == (200, {"txt": V2})
    assert served.serial() == serial + 3
    assert acme.update(account, V1)[0] == 200  # so V3, now the older, is the one replaced
    assert served.txt(account.fulldomain) == {V2, V1}

    reply = served.server.tcp(dns.message.make_query(account.fulldomain, "TXT"))
    (rrset,) = reply.answer
    assert rrset.ttl == TTL and reply.flags & dns.flags.AA
    # The whole zone carries it, and the label above is an empty non-terminal.
    zone = dns.zone.from_xfr(
        dns.query.xfr("127.0.0.1", "fo.example.net", port=served.server.dns_port, timeout=10)
    )
    held = zone.get_rdataset(account.fulldomain + ".", "TXT")
    assert held is not None and {r.to_text().strip('"') for r in held} == {V1, V2}
    label = served.server.udp(dns.message.make_query("acme.fo.example.net", "A"))
    assert label.rcode() == dns.rcode.NOERROR and not label.answer
    # The events: who set what, and which zone's serial it moved.
    events = served.admin.ok("GET", "/v1/events?limit=5")["events"]
    updated = [e for e in events if e["action"] == "acme_updated"]
    assert updated[0]["actor"] == "acme" and updated[0]["zone"] == "fo.example.net"
    assert updated[0]["after"]["txt"] == [V2, V1] and updated[0]["before"]["txt"] == [V3, V2]
    assert updated[0]["touched"]["zones"] == ["fo.example.net"]


def test_registering_needs_a_write_token_of_the_admin_api(served: Served) -> None:
    acme = served.acme
    status, reply, headers = acme.call("POST", "/register")
    assert (status, reply["error"]) == (401, "forbidden") and "write scope" in reply["message"]
    assert headers["www-authenticate"].startswith("Bearer")
    assert acme.register("not-a-token-of-fodns")[0] == 401
    reader = served.token("acme-reader", "read")
    status, reply = acme.register(reader)
    assert (status, reply["error"]) == (403, "forbidden") and "needs write" in reply["message"]
    limited = served.token("acme-limited", "write", groups=["shop-*"])
    status, reply = acme.register(limited)
    assert (status, reply["error"]) == (403, "forbidden") and "no group" in reply["message"]
    writer = served.token("acme-writer", "write")
    account = acme.account(writer)
    assert acme.update(account, V1)[0] == 200
    registered = served.admin.ok("GET", "/v1/events?limit=20")["events"]
    mine = [
        e
        for e in registered
        if e["action"] == "acme_registered" and e["after"]["subdomain"] == account.subdomain
    ]
    assert mine[0]["actor"] == "acme-writer" and "password" not in json.dumps(mine[0])
    # A revoked token is refused here as at once as by the admin API.
    served.admin.ok("DELETE", "/v1/tokens/acme-writer")
    assert acme.register(writer)[0] == 401


# ---- the admin API: registrations tied to groups, and the CNAME check ------------------------


@pytest.fixture(scope="module")
def shop(served: Served) -> str:
    """The failover group `shop` (its label) of the module's fodns."""
    admin = served.admin
    admin.ok("POST", "/v1/apps", {"name": "shop-eu", "web_servers": ["192.0.2.10"]}, 201)
    admin.ok("POST", "/v1/apps", {"name": "shop-us", "web_servers": ["198.51.100.7"]}, 201)
    group = {"zone": "fo.example.net", "label": "shop", "primary": "shop-eu", "backup": "shop-us"}
    return str(admin.ok("POST", "/v1/groups", group, 201)["label"])


def test_a_groups_registration_gives_the_cnames_and_checks_them(served: Served, shop: str) -> None:
    admin = served.admin
    names = [f"www.{CUSTOMER}", f"wrong.{CUSTOMER}", f"none.{CUSTOMER}", f"*.{CUSTOMER}"]
    body = {"group": shop, "names": names, "allowfrom": ["127.0.0.0/8"], "reason": "tls"}
    made = admin.ok("POST", "/v1/acme/registrations", body, 201)
    fulldomain = made["fulldomain"]
    assert fulldomain == f"{made['subdomain']}.acme.fo.example.net"
    assert (made["group"], made["group_zone"], made["names"]) == ("shop", "fo.example.net", names)
    challenges = [f"_acme-challenge.{n}" for n in (f"www.{CUSTOMER}", f"wrong.{CUSTOMER}")]
    challenges += [f"_acme-challenge.none.{CUSTOMER}", f"_acme-challenge.{CUSTOMER}"]
    assert made["cnames"] == [{"name": name, "target": fulldomain} for name in challenges]
    account = Account.of(made)

    # The customer adds one of the CNAMEs (the customer's zone is served by fodns here).
    zone_file = served.folder / f"{CUSTOMER}.zone"
    zone_file.write_text(CUSTOMER_ZONE + f"_acme-challenge.www IN CNAME {fulldomain}.\n")
    served.server.process.send_signal(signal.SIGHUP)
    query = dns.message.make_query(f"_acme-challenge.www.{CUSTOMER}", "CNAME")
    assert wait_for(lambda: served.server.udp(query).answer, 10)

    shown = admin.ok("GET", f"/v1/acme/registrations/{made['subdomain']}")
    assert "password" not in shown and shown["txt"] == []
    states = {check["name"]: (check["state"], check["found"]) for check in shown["cname_check"]}
    assert states == {
        f"_acme-challenge.www.{CUSTOMER}": ("ok", fulldomain),
        f"_acme-challenge.wrong.{CUSTOMER}": ("wrong", "elsewhere.example.org"),
        f"_acme-challenge.none.{CUSTOMER}": ("missing", None),
        f"_acme-challenge.{CUSTOMER}": ("missing", None),
    }
    assert [check["ok"] for check in shown["cname_check"]] == [True, False, False, False]

    # Both sides' clients use the one account: two values, one each.
    assert served.acme.update(account, V1)[0] == 200
    assert served.acme.update(account, V2)[0] == 200
    assert served.txt(fulldomain) == {V1, V2}
    listed = admin.ok("GET", "/v1/acme/registrations?group=shop")["registrations"]
    assert [item["subdomain"] for item in listed] == [made["subdomain"]]
    assert listed[0]["updated_at"] is not None
    assert admin.ok("GET", "/v1/acme/registrations?group=nothing") == {"registrations": []}

    # Group limits: another group's token may neither register for it nor delete it.
    other = served.token("acme-other-groups", "write", groups=["other-*"])
    status, reply = Api(served.server, other).call("POST", "/v1/acme/registrations", body)
    assert status == 403 and reply["error"]["scope"] == "groups"
    path = f"/v1/acme/registrations/{made['subdomain']}"
    assert Api(served.server, other).call("DELETE", path)[0] == 403
    status, reply = admin.call("POST", "/v1/acme/registrations", {**body, "group": "nothing"})
    assert status == 404 and reply["error"]["field"] == "group"

    # Deleted: its credentials stop, its records go (NXDOMAIN, on a secondary too).
    serial = served.serial()
    admin.ok("DELETE", f"{path}?reason=customer%20left", None, 204)
    assert served.serial() == serial + 1
    gone = served.server.udp(dns.message.make_query(fulldomain, "TXT"))
    assert gone.rcode() == dns.rcode.NXDOMAIN
    assert served.acme.update(account, V3) == (401, {"error": "forbidden"})
    assert admin.call("GET", path)[0] == 404
    deleted = admin.ok("GET", "/v1/events?limit=1")["events"][0]
    assert (deleted["action"], deleted["reason"]) == ("acme_deleted", "customer left")


def test_the_cli_prints_legos_storage_file_and_the_cnames(served: Served, shop: str) -> None:
    done = run_cli(
        served.server, TOKEN, "acme", "register", "--group", "shop", "--name", f"*.{CUSTOMER}",
        "--name", CUSTOMER, "--allowfrom", "127.0.0.1",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    storage = json.loads(done.stdout)
    assert list(storage) == [CUSTOMER]  # lego asks for the wildcard's name below the *.
    account = storage[CUSTOMER]
    assert set(account) == {"fulldomain", "subdomain", "username", "password"}
    line = f"_acme-challenge.{CUSTOMER}. CNAME {account['fulldomain']}."
    assert line in done.stderr.splitlines() and "shown only this once" in done.stderr
    acme = served.acme
    assert acme.update(Account(**account, allowfrom=[]), V3)[0] == 200
    listed = json.loads(run_cli(served.server, TOKEN, "acme", "list", "--group", "shop").stdout)
    assert account["subdomain"] in [item["subdomain"] for item in listed]
    shown = json.loads(run_cli(served.server, TOKEN, "acme", "show", account["subdomain"]).stdout)
    assert shown["txt"] == [V3] and shown["cname_check"][0]["state"] == "missing"
    assert run_cli(served.server, TOKEN, "acme", "delete", account["subdomain"]).returncode == 0


def test_no_group_may_take_the_label_of_the_challenges(served: Served) -> None:
    status, reply = served.admin.call(
        "POST", "/v1/groups", {"zone": "fo.example.net", "label": "acme"}
    )
    assert status == 409 and "ACME" in reply["error"]["message"]


def test_credentials_are_kept_only_as_hashes(served: Served) -> None:
    account = served.acme.account(TOKEN)
    assert served.acme.update(account, V1)[0] == 200
    files = sorted(served.folder.glob("fodns.db*"))
    assert served.folder / "fodns.db-wal" in files
    for path in files:
        assert account.password.encode() not in path.read_bytes(), path
    with sqlite3.connect(f"file:{served.folder / 'fodns.db'}?mode=ro", uri=True) as db:
        (kept,) = db.execute(
            "SELECT password_hash FROM acme_registrations WHERE username = ?", [account.username]
        ).fetchone()
    assert kept == hashlib.sha256(account.password.encode()).hexdigest()
    everything = json.dumps(served.admin.ok("GET", "/v1/events?limit=1000"))
    assert account.password not in everything and kept not in everything


# ---- open registration, and every DNS worker answering at once ------------------------------


def test_open_registration_is_rate_limited_and_every_worker_answers_an_update(
    fodns_factory: StartFodns,
) -> None:
    server = fodns_factory(
        TOKEN, workers=2, extra=acme_table(registration="open", open_registrations_per_hour=3)
    )
    acme = AcmeClient(server)
    accounts = [acme.account() for _ in range(3)]  # no token: open
    status, reply, headers = acme.call("POST", "/register")
    assert (status, reply) == (429, {"error": "too_many_registrations"})
    assert 3000 < int(headers["retry-after"]) <= 3600
    registered = Api(server, TOKEN).ok("GET", "/v1/events?limit=3")["events"]
    assert {(e["action"], e["actor"]) for e in registered} == {("acme_registered", "acme")}

    account = accounts[0]
    assert acme.update(account, V1)[0] == 200
    # The reply came once every worker serves it: asked from many fresh sockets (the
    # kernel spreads them over the workers), each answers it at once...
    query = dns.message.make_query(account.fulldomain, "TXT")
    assert all(answer_data(reply) == {f'"{V1}"'} for reply in ask_every_worker(server, query))
    # ...and, each worker alone with the other stopped, each answers it.
    workers = worker_pids(server)
    assert len(workers) == 2
    for other in workers:
        with stopped(other):
            assert answer_data(_from_the_running_worker(server, query)) == {f'"{V1}"'}


def _from_the_running_worker(server: FodnsProcess, query: dns.message.Message) -> Any:
    """A reply from whichever worker is not stopped: a fresh socket the kernel hands to
    the stopped one gets none, so another is tried."""
    for _ in range(40):
        try:
            return dns.query.udp(query, "127.0.0.1", port=server.dns_port, timeout=0.2)
        except dns.exception.Timeout:
            continue
    raise AssertionError("no worker answered")


# ---- IXFR to a real Knot secondary -----------------------------------------------------------


def test_an_update_reaches_a_knot_secondary_by_ixfr(
    fodns_factory: StartFodns, tmp_path: Path
) -> None:
    secondary = KnotSecondary(tmp_path / "knot")
    options = transfer_options(notify=secondary.port)
    primary = fodns_factory(
        TOKEN,
        zones=[(ZONE, EXAMPLE_ZONE)],
        zone_extra=options["zone_extra"],
        extra=options["extra"] + acme_table(registration="open"),
    )
    try:
        secondary.start(primary.dns_port)
        soa = primary.udp(dns.message.make_query(ZONE, "SOA"))
        assert secondary.wait_serial(int(soa.answer[0][0].serial), timeout=30)
        acme = AcmeClient(primary)
        account = acme.account()
        assert acme.update(account, V1)[0] == 200
        assert acme.update(account, V2)[0] == 200

        def knot_answers() -> bool:
            try:
                reply = secondary.query(account.fulldomain, "TXT", timeout=0.2)
            except (dns.exception.DNSException, OSError):
                return False
            return answer_data(reply) == {f'"{V1}"', f'"{V2}"'}

        assert wait_for(knot_answers, 30), secondary.log_text()[-3000:]
        serial = int(primary.udp(dns.message.make_query(ZONE, "SOA")).answer[0][0].serial)
        assert wait_for(lambda: serial in {s for _, s in secondary.transfers()}, 30)
        kinds = [kind for kind, _ in secondary.transfers()]
        assert kinds[0] == "AXFR" and kinds[1:] and set(kinds[1:]) == {"IXFR"}, kinds
    finally:
        secondary.stop()


# ---- the Route53 mirror copies no challenge ------------------------------------------------


def test_the_route53_mirror_copies_groups_and_no_challenge(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A challenge's update is an event of the zone the mirror follows: the mirror reads
    past it and writes nothing for it, while a group's change made after it arrives."""
    for name, value in AWS_ENV.items():
        monkeypatch.setenv(name, value)
    place = AcmePlace(ZONE, "acme", TTL)
    with (
        MotoServer() as moto,
        RecordingProxy(moto.url) as proxy,
        Store(tmp_path / "fodns.db", {ZONE: ZoneDefaults(1)}, acme=place) as store,
    ):
        zone_id = moto.create_zone(ZONE)
        mirror = Route53Mirror(
            store,
            Route53Config(enabled=True, endpoint_url=proxy.url),
            [ZoneConfig(ZONE, EXAMPLE_ZONE, route53_hosted_zone_id=zone_id)],
        )
        mirror.start()
        try:
            credentials = new_credentials()
            store.acme_register("test", credentials)
            store.acme_set_txt(credentials.subdomain, V1)
            store.create_app("test", "eu", web_servers=["192.0.2.10"])
            store.create_group("test", ZONE, "shop", primary="eu")
            mirror.changed()
            assert wait_for(
                lambda: ("shop.fo.example.net.", "A") in moto.records(zone_id), MIRROR_WAIT
            )
            assert not [key for key in moto.records(zone_id) if key[1] == "TXT"]
            assert mirror.request("plan").result(timeout=MIRROR_WAIT)[0].empty
        finally:
            mirror.stop()


# ---- the log: acme events, their kinds and their trimming -------------------------------------


def test_old_update_events_are_trimmed_never_past_what_dns_serves(tmp_path: Path) -> None:
    place = AcmePlace("fo.example.net", "acme", TTL)
    with Store(tmp_path / "t.db", {"fo.example.net": ZoneDefaults(serial=1)}, acme=place) as store:
        credentials = new_credentials()
        registered = store.acme_register("admin", credentials).event
        first = store.acme_set_txt(credentials.subdomain, V1).event
        second = store.acme_set_txt(credentials.subdomain, V2).event
        assert registered is not None and first is not None and second is not None
        # Everything written before a minute from now counts as old here; DNS serves up
        # to the first update only: the first goes, the second stays.
        store.acme_set_txt(credentials.subdomain, V3, served_upto=first.seq, keep_events=-60)
        actions = [(e.seq, e.action) for e in reversed(store.events())]
        assert (first.seq, "acme_updated") not in actions
        assert (second.seq, "acme_updated") in actions
        assert (registered.seq, "acme_registered") in actions
        # With a week kept (the default), nothing that young goes, however far DNS is.
        store.acme_set_txt(credentials.subdomain, V1, served_upto=store.last_seq())
        assert (second.seq, "acme_updated") in [(e.seq, e.action) for e in store.events()]
        assert store.acme_txt(credentials.subdomain) == (V3, V1)
    with sqlite3.connect(tmp_path / "t.db") as db, pytest.raises(sqlite3.IntegrityError):
        db.execute("DELETE FROM events WHERE action = 'acme_registered'")


def test_acme_events_are_webhooks_admin_kind_but_updates_which_no_kind_sends() -> None:
    def event(action: str) -> Event:
        return Event(1, "", "acme", action, "fo.example.net", None, None, None, None, None)

    assert event_kind(event("acme_registered")) == "admin"
    assert event_kind(event("acme_deleted")) == "admin"
    assert event_kind(event("acme_updated")) is None


# ---- the config ----------------------------------------------------------------------------


def test_the_readmes_acme_table_is_a_valid_config(tmp_path: Path) -> None:
    (block,) = re.findall(
        r"```toml\n(\[acme\]\n.*?)```", (REPOSITORY / "README.md").read_text(), re.S
    )
    config = load_config(write_config(tmp_path, [("fo.example.net", EXAMPLE_ZONE)], extra=block))
    acme = config.acme
    assert acme.enabled and acme.place == AcmePlace("fo.example.net", "acme", 10)
    assert (acme.registration, acme.open_registrations_per_hour, acme.resolver) == (
        "token",
        20,
        None,
    )


@pytest.mark.parametrize(
    ("table", "refused"),
    [
        ('zone = "shop.test"', "acme.zone"),
        ('label = "a.b"', "acme.label"),
        ('label = "-x"', "acme.label"),
        ("ttl = 4", "acme.ttl"),
        ("ttl = 301", "acme.ttl"),
        ('registration = "anyone"', "acme.registration"),
        ("open_registrations_per_hour = 0", "acme.open_registrations_per_hour"),
        ('resolver = "resolver.example:53"', "acme.resolver"),
        ('listen = "localhost:8054"', "acme.listen"),
        ("colour = 1", "acme.colour"),
    ],
)
def test_a_wrong_acme_table_stops_start_up_naming_the_key(
    tmp_path: Path, table: str, refused: str
) -> None:
    listen = "" if table.startswith("listen") else 'listen = "127.0.0.1:0"\n'
    extra = f"[acme]\n{listen}{table}\n"
    path = write_config(tmp_path, [("fo.example.net", EXAMPLE_ZONE)], extra=extra)
    with pytest.raises(ConfigError, match=re.escape(refused)):
        load_config(path)


def test_acme_needs_its_zone_named_when_several_are_served(tmp_path: Path) -> None:
    zones = [("fo.example.net", EXAMPLE_ZONE), ("fo.example.org", EXAMPLE_ZONE)]
    with pytest.raises(ConfigError, match=re.escape("acme.zone")):
        load_config(write_config(tmp_path, zones, extra=acme_table()))
    nested = [("fo.example.net", EXAMPLE_ZONE), ("acme.fo.example.net", EXAMPLE_ZONE)]
    with pytest.raises(ConfigError, match=re.escape("acme.label")):
        load_config(write_config(tmp_path, nested, extra=acme_table(zone="fo.example.net")))
    off = load_config(write_config(tmp_path, zones, extra="[acme]\n"))
    assert not off.acme.enabled and off.acme.place is None
