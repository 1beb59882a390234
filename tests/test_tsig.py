"""TSIG (RFC 8945) as a secondary meets it: key names compared as the domain names they
are, with one DNS worker and with two."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.TSIG
import dns.tsig
import dns.tsigkeyring
import dns.zone
import pytest

from tests.conftest import EXAMPLE_ZONE, FodnsProcess, start_fodns, write_config
from tests.test_transfer import SECRET

BADTIME = 18
NOTAUTH = 9
# RFC 8945 §10: "The RECOMMENDED value in most situations is 300 seconds."
SERVER_MAX_FUDGE = 300
TSIG_XFR = f'[tsig.xfr]\nalgorithm = "hmac-sha256"\nsecret = "{SECRET}"\n'


def start(
    directory: Path, workers: int = 1, tsig: str = TSIG_XFR, key: str = "xfr"
) -> FodnsProcess:
    config = write_config(
        directory,
        [("fo.example.net", EXAMPLE_ZONE)],
        dns_extra=f"workers = {workers}\n",
        zone_extra=f'allow_transfer = [{{ address = "127.0.0.1/32", key = "{key}" }}]\n',
        extra=tsig,
    )
    return start_fodns("--config", str(config), env={"FODNS_ADMIN_TOKEN": "tsig-test-token"})


@pytest.fixture(scope="module", params=[1, 2], ids=["workers=1", "workers=2"])
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[FodnsProcess]:
    running = start(tmp_path_factory.mktemp("tsig"), workers=request.param)
    yield running
    assert running.stop() == 0


# ---- key names --------------------------------------------------------------------


def pull(server: FodnsProcess, keyname: str) -> dns.zone.Zone:
    keyring = dns.tsigkeyring.from_text({keyname: ("hmac-sha256", SECRET)})
    return dns.zone.from_xfr(
        dns.query.xfr(
            "127.0.0.1",
            "fo.example.net",
            port=server.dns_port,
            keyring=keyring,
            keyname=keyname,
            timeout=5,
        )
    )


@pytest.mark.parametrize("keyname", ["xfr.", "XFR.", "Xfr"])
def test_a_key_name_matches_in_any_letter_case(server: FodnsProcess, keyname: str) -> None:
    """RFC 8945 §4.2: a key name is a domain name, so `XFR.` is the key [tsig.xfr]."""
    zone = pull(server, keyname)
    assert zone.find_rdataset("www", "A")


@pytest.mark.parametrize(
    ("tsig_table", "allow_key"),
    [
        ('[tsig."XFR."]', "xfr"),
        ("[tsig.xfr]", "Xfr."),
        ('[tsig."xfr."]', "xfr."),
    ],
)
def test_configured_key_names_ignore_case_and_the_final_dot(
    tmp_path: Path, tsig_table: str, allow_key: str
) -> None:
    tsig = f'{tsig_table}\nalgorithm = "hmac-sha256"\nsecret = "{SECRET}"\n'
    running = start(tmp_path, tsig=tsig, key=allow_key)
    try:
        assert pull(running, "xfr.").find_rdataset("www", "A")
    finally:
        assert running.stop() == 0
