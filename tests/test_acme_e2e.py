"""ACME DNS-01 through fodns, end to end, with software nobody here wrote (issue 16).

A customer's name, www.shop.test, lives in their own zone (Knot DNS) as a CNAME to a
failover group in fodns's zone. fodns registers an acme-dns account for the name, the
customer adds the one `_acme-challenge` CNAME it prints, and from then on both sides
of the group, primary and backup, each obtain and renew their own certificate from
pebble (Let's Encrypt's test CA), which validates through a recursive resolver
(Unbound) that follows the delegation to fodns. The ACME client is certbot with lego's
acme-dns provider, each side in its own folder with its own ACME account and the same
acme-dns credentials. Whichever side the group points at, both keep a valid
certificate: the backup's is never stale when traffic arrives.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509

from tests.acme_rig import (
    CUSTOMER_NAME,
    AcmeClient,
    Daemon,
    ParentZone,
    Pebble,
    Resolver,
    loopback_tls,
)
from tests.support import Api, FodnsProcess, free_port, run_cli, serving, start_with_config

pytest.importorskip("certbot_dns_multi", reason="certbot-dns-multi ships x86_64 wheels only")

TOKEN = "acme-e2e-admin-token-0123456789"
ZONE = "fo.example.net"
PRIMARY_ADDRESS = "192.0.2.10"
BACKUP_ADDRESS = "198.51.100.7"


@pytest.fixture
def daemons() -> Iterator[list[Daemon]]:
    """What the test starts besides fodns; each is stopped by its PID afterwards."""
    started: list[Daemon] = []
    yield started
    for daemon in reversed(started):
        daemon.stop()


def printed_cname(said: str) -> str:
    """The target of the `_acme-challenge` CNAME `fodns acme register` tells the customer
    to add (on stderr: stdout is the storage file)."""
    cname = re.search(
        rf"_acme-challenge\.{re.escape(CUSTOMER_NAME)}\.?\s+(?:\d+\s+)?(?:IN\s+)?CNAME\s+(\S+)",
        said,
    )
    assert cname, f"no CNAME line for _acme-challenge.{CUSTOMER_NAME} in:\n{said}"
    return cname[1].rstrip(".")


def cname_state(fodns: FodnsProcess, subdomain: str) -> str:
    """What `fodns acme show` says of the customer's one CNAME, seen through Unbound."""
    shown = run_cli(fodns, TOKEN, "acme", "show", subdomain)
    assert shown.returncode == 0, shown.stdout + shown.stderr
    (check,) = json.loads(shown.stdout)["cname_check"]
    return str(check["state"])


def assert_issued(certificate: x509.Certificate, intermediate: x509.Certificate) -> None:
    """For the customer's name, and signed by this pebble's intermediate."""
    names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert names.value.get_values_for_type(x509.DNSName) == [CUSTOMER_NAME]
    assert certificate.issuer == intermediate.subject
    certificate.verify_directly_issued_by(intermediate)


def test_primary_and_backup_each_obtain_and_renew_their_certificate_through_fodns(
    tmp_path: Path, daemons: list[Daemon]
) -> None:
    resolver = Resolver(tmp_path / "unbound")
    acme_port = free_port()
    acme_table = (
        "[acme]\n"
        f'listen = "127.0.0.1:{acme_port}"\n'
        f'zone = "{ZONE}"\n'
        'label = "acme"\n'
        "ttl = 10\n"
        f'resolver = "127.0.0.1:{resolver.port}"\n'
    )
    folder = tmp_path / "fodns"
    folder.mkdir()
    with serving(start_with_config(folder, TOKEN, workers=2, extra=acme_table)) as fodns:
        api = Api(fodns, TOKEN)
        api.ok("POST", "/v1/apps", {"name": "shop-eu", "web_servers": [PRIMARY_ADDRESS]}, 201)
        api.ok("POST", "/v1/apps", {"name": "shop-us", "web_servers": [BACKUP_ADDRESS]}, 201)
        group = {"label": "shop", "primary": "shop-eu", "backup": "shop-us"}
        api.ok("POST", "/v1/groups", group, 201)

        # The customer's zone: their name already points at the group.
        parent = ParentZone(tmp_path / "knot")
        daemons.append(parent)
        parent.start([f"www CNAME shop.{ZONE}."])
        daemons.append(resolver)
        resolver.start({"shop.test": parent.port, ZONE: fodns.dns_port})
        assert resolver.addresses(CUSTOMER_NAME) == {PRIMARY_ADDRESS}

        registered = run_cli(
            fodns, TOKEN, "acme", "register", "--group", "shop", "--name", CUSTOMER_NAME
        )
        assert registered.returncode == 0, registered.stdout + registered.stderr
        # stdout is lego's acme-dns storage file, as a user would redirect it; the same
        # file serves both sides.
        storage = tmp_path / "acme-dns.json"
        storage.write_text(registered.stdout)
        storage.chmod(0o600)
        registration = json.loads(registered.stdout)[CUSTOMER_NAME]
        target = printed_cname(registered.stderr)
        assert target == registration["fulldomain"]
        assert target.endswith(f".acme.{ZONE}")

        pebble = Pebble(tmp_path / "pebble", loopback_tls(tmp_path / "tls"))
        daemons.append(pebble)
        pebble.start(resolver.port)
        acme_api = f"http://127.0.0.1:{acme_port}"
        primary, backup = (
            AcmeClient(tmp_path / side, pebble, resolver.port, acme_api, storage)
            for side in ("primary", "backup")
        )

        # Before the customer adds the CNAME, fodns holds the TXT but nothing leads the
        # CA to it: the CA refuses, so what follows is really validated through fodns.
        assert cname_state(fodns, registration["subdomain"]) == "missing"
        refused = primary.obtain(CUSTOMER_NAME)
        said = refused.stdout + refused.stderr
        assert refused.returncode != 0, said
        assert "unauthorized" in said and f"_acme-challenge.{CUSTOMER_NAME}" in said, said

        parent.set_record("_acme-challenge.www", "CNAME", f"{target}.")
        assert cname_state(fodns, registration["subdomain"]) == "ok"

        # Both sides, while the name points at the primary.
        issued: dict[str, x509.Certificate] = {}
        for side, client in (("primary", primary), ("backup", backup)):
            done = client.obtain(CUSTOMER_NAME)
            assert done.returncode == 0, f"{side}:\n{done.stdout}{done.stderr}"
            issued[side] = client.certificate(CUSTOMER_NAME)
        assert resolver.addresses(CUSTOMER_NAME) == {PRIMARY_ADDRESS}

        # The group switches; both sides renew the same way.
        api.ok("POST", "/v1/groups/shop/switch", {"to": "backup", "reason": "eu maintenance"})
        assert resolver.addresses(CUSTOMER_NAME) == {BACKUP_ADDRESS}
        renewed: dict[str, x509.Certificate] = {}
        for side, client in (("primary", primary), ("backup", backup)):
            done = client.renew(CUSTOMER_NAME)
            assert done.returncode == 0, f"{side}:\n{done.stdout}{done.stderr}"
            renewed[side] = client.certificate(CUSTOMER_NAME)

        intermediate = pebble.intermediate()
        for certificate in [*issued.values(), *renewed.values()]:
            assert_issued(certificate, intermediate)
        # Four certificates: each side its own key and account, each renewal a new one.
        serials = {c.serial_number for c in [*issued.values(), *renewed.values()]}
        assert len(serials) == 4
        assert issued["primary"].public_key() != issued["backup"].public_key()
