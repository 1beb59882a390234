"""The world an ACME DNS-01 issuance runs in, all on 127.0.0.1: a customer's parent zone
(Knot DNS), the CA's recursive resolver (Unbound), Let's Encrypt's test CA (pebble) and
an ACME client (certbot with lego's acme-dns provider), each a real program that the
test starts and stops by its PID.

Nothing here may send a packet beyond loopback: every daemon listens on 127.0.0.1, the
resolver sends only from 127.0.0.1 (so it cannot reach another address at all), knows
only its stub zones and refuses every other name, and pebble and the ACME client are
told to use that resolver and nothing else. Ports are picked free by the OS just before a daemon
binds them (these programs cannot report a port of their own choosing).
"""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import json
import os
import signal
import ssl
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import dns.exception
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import dns.update
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.secondaries import find_executable, knot_server_config
from tests.support.net import free_port

PARENT_ZONE = "shop.test"
CUSTOMER_NAME = "www.shop.test"
START_TIMEOUT = 15.0
STOP_TIMEOUT = 10.0
CLIENT_TIMEOUT = 60.0


def _wait(
    condition: Callable[[], object], timeout: float, process: subprocess.Popen[bytes]
) -> bool:
    """Poll `condition()` until true, the process exits, or `timeout` seconds pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        with contextlib.suppress(OSError, dns.exception.DNSException):
            if condition():
                return True
        time.sleep(0.05)
    return False


class Daemon:
    """One program we start: its folder, its log, its process (in its own session, so
    that stop() can reach the helpers it may fork, and nothing else)."""

    name = "daemon"

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.process: subprocess.Popen[bytes] | None = None
        directory.mkdir(parents=True, exist_ok=True)

    @property
    def log_file(self) -> Path:
        return self.directory / f"{self.name}.out"

    def log_text(self) -> str:
        return self.log_file.read_text(errors="replace") if self.log_file.exists() else ""

    def spawn(self, argv: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        with self.log_file.open("ab") as out:
            self.process = subprocess.Popen(
                argv,
                cwd=self.directory,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
        return self.process

    def started(self, ready: Callable[[], object]) -> None:
        """Wait (bounded) until `ready()` holds; a daemon that exits or never gets there
        is stopped and its log shown."""
        assert self.process is not None
        if not _wait(ready, START_TIMEOUT, self.process):
            self.stop()
            raise AssertionError(f"{self.name} did not start:\n{self.log_text()[-3000:]}")

    def stop(self) -> int | None:
        """SIGTERM to the process we started, a bounded wait, then SIGKILL to its group."""
        process = self.process
        if process is None:
            return None
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(STOP_TIMEOUT)
        return process.returncode


def udp_query(port: int, name: str, rdtype: str, timeout: float = 2.0) -> dns.message.Message:
    query = dns.message.make_query(name, rdtype)
    return dns.query.udp(query, "127.0.0.1", port=port, timeout=timeout)


class ParentZone(Daemon):
    """Knot DNS authoritative for the customer's own zone, where the customer puts
    `www CNAME <group>.<fodns zone>` and `_acme-challenge.www CNAME <fulldomain>`. The
    customer's later edits arrive as RFC 2136 UPDATEs, allowed from 127.0.0.1 only."""

    name = "knot"

    def __init__(self, directory: Path, zone: str = PARENT_ZONE) -> None:
        super().__init__(directory)
        self.zone = zone
        self.port = 0

    def start(self, records: list[str]) -> None:
        """Serve the zone with `records` (zone file lines, names relative to it)."""
        d = self.directory
        self.port = free_port()
        (d / f"{self.zone}.zone").write_text(
            f"$ORIGIN {self.zone}.\n$TTL 60\n"
            f"@ SOA ns.{self.zone}. hostmaster.{self.zone}. 1 7200 3600 1209600 60\n"
            f"@ NS ns.{self.zone}.\nns A 127.0.0.1\n" + "".join(f"{r}\n" for r in records)
        )
        config = d / "knot.conf"
        config.write_text(
            knot_server_config(d, self.port, "tests/acme_rig.py") + "acl:\n"
            "  - id: customer\n"
            "    address: 127.0.0.1\n"
            "    action: update\n"
            "template:\n"
            "  - id: default\n"
            f'    storage: "{d}"\n'
            "    zonefile-sync: -1\n"  # the edits live in Knot's journal; the file stays ours
            "zone:\n"
            f"  - domain: {self.zone}\n"
            f"    file: {self.zone}.zone\n"
            "    acl: customer\n"
        )
        self.spawn([find_executable("knotd"), "-c", str(config)])
        self.started(lambda: udp_query(self.port, self.zone, "SOA", 0.2).answer)

    def set_record(self, name: str, rdtype: str, data: str, ttl: int = 60) -> None:
        """Replace `name`'s `rdtype` records with one, as the customer would in their DNS."""
        update = dns.update.UpdateMessage(f"{self.zone}.")
        update.replace(name, ttl, rdtype, data)
        reply = dns.query.tcp(update, "127.0.0.1", port=self.port, timeout=5)
        assert reply.rcode() == dns.rcode.NOERROR, f"UPDATE {name} {rdtype}: {reply}"


class Resolver(Daemon):
    """Unbound as the CA's recursive resolver. It knows only stub zones, each pointing
    at a loopback server (the parent zone's Knot, fodns), and refuses every other name,
    so the root is never asked. It sends only from 127.0.0.1, so it cannot reach any
    other address even if told to. Like Let's Encrypt's own resolvers it keeps no cache
    worth the name (they cap TTLs at 60 s and "minimise caching"): here nothing is kept,
    so each lookup sees what the authoritative servers serve at that moment. No DNSSEC
    (the iterator alone, no trust anchor, nothing fetched)."""

    name = "unbound"

    def __init__(self, directory: Path) -> None:
        super().__init__(directory)
        # Chosen now, so that fodns can be told where its CNAME check resolves first.
        self.port = free_port()

    def start(self, stubs: dict[str, int]) -> None:
        """Resolve the zones in `stubs` (zone -> port on 127.0.0.1) and nothing else."""
        d = self.directory
        zones = "".join(
            f'    local-zone: "{zone}." transparent\n' for zone in stubs
        )  # a more specific local zone than "." that adds nothing: resolve as usual
        stub_zones = "".join(
            f'stub-zone:\n    name: "{zone}."\n    stub-addr: 127.0.0.1@{port}\n'
            for zone, port in stubs.items()
        )
        config = d / "unbound.conf"
        config.write_text(
            "# Written by tests/acme_rig.py: loopback only, this user, state in one folder.\n"
            "server:\n"
            f"    interface: 127.0.0.1\n"
            f"    port: {self.port}\n"
            "    outgoing-interface: 127.0.0.1\n"
            "    do-ip6: no\n"
            "    do-not-query-localhost: no\n"
            "    access-control: 127.0.0.0/8 allow\n"
            '    username: ""\n'
            '    chroot: ""\n'
            f'    directory: "{d}"\n'
            f'    pidfile: "{d}/unbound.pid"\n'
            '    logfile: ""\n'
            "    use-syslog: no\n"
            "    log-queries: yes\n"
            "    verbosity: 1\n"
            "    num-threads: 1\n"
            "    so-reuseport: no\n"
            '    module-config: "iterator"\n'
            "    cache-max-ttl: 0\n"
            "    cache-max-negative-ttl: 0\n"
            '    local-zone: "." refuse\n'
            f"{zones}"
            "remote-control:\n"
            "    control-enable: no\n"
            f"{stub_zones}"
        )
        checked = subprocess.run(
            [find_executable("unbound-checkconf"), str(config)], capture_output=True, text=True
        )
        assert checked.returncode == 0, f"unbound.conf: {checked.stdout}{checked.stderr}"
        self.spawn([find_executable("unbound"), "-d", "-c", str(config)])
        # A refused name answers at once, from Unbound alone.
        self.started(lambda: udp_query(self.port, "example.", "SOA", 0.2))

    def resolve(self, name: str, rdtype: str) -> dns.message.Message:
        return udp_query(self.port, name, rdtype)

    def addresses(self, name: str) -> set[str]:
        """The A records `name` ends at, CNAMEs followed as a browser's resolver would."""
        reply = self.resolve(name, "A")
        answers = [rrset for rrset in reply.answer if rrset.rdtype == dns.rdatatype.A]
        return {rr.to_text() for rrset in answers for rr in rrset}


@dataclass
class TlsFiles:
    """A throwaway CA and a certificate it issued for 127.0.0.1: pebble's HTTPS."""

    ca: Path
    cert: Path
    key: Path


def loopback_tls(directory: Path) -> TlsFiles:
    """The Debian pebble package ships no test certificate (upstream's test/certs are
    left out), so one is made here: a CA that lego is told to trust, and a leaf for
    127.0.0.1 that pebble serves its API with."""
    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fodns test CA for pebble")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    files = TlsFiles(directory / "ca.pem", directory / "pebble.pem", directory / "pebble.key")
    files.ca.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    files.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    files.key.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return files


class Pebble(Daemon):
    """Let's Encrypt's test CA. It validates DNS-01 by asking the resolver for
    `_acme-challenge.<name>` TXT (CNAMEs followed), as Let's Encrypt does. Its root and
    intermediate are made afresh at each start; the management API hands them out."""

    name = "pebble"

    def __init__(self, directory: Path, tls: TlsFiles) -> None:
        super().__init__(directory)
        self.tls = tls
        self.port = 0
        self.management_port = 0

    @property
    def directory_url(self) -> str:
        return f"https://127.0.0.1:{self.port}/dir"

    def start(self, resolver_port: int) -> None:
        self.port, self.management_port = free_port(), free_port()
        config = self.directory / "pebble-config.json"
        config.write_text(
            json.dumps(
                {
                    "pebble": {
                        "listenAddress": f"127.0.0.1:{self.port}",
                        "managementListenAddress": f"127.0.0.1:{self.management_port}",
                        "certificate": str(self.tls.cert),
                        "privateKey": str(self.tls.key),
                        # Where pebble would connect for HTTP-01 and TLS-ALPN-01: never,
                        # as lego offers only DNS-01; ports nothing listens on anyway.
                        "httpPort": free_port(),
                        "tlsPort": free_port(),
                        "ocspResponderURL": "",
                        "externalAccountBindingRequired": False,
                    }
                },
                indent=2,
            )
        )
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            # Validate at once (not after up to 15 s), accept every good nonce, and never
            # reuse an authorisation: each order, renewals included, is validated anew.
            "PEBBLE_VA_NOSLEEP": "1",
            "PEBBLE_WFE_NONCEREJECT": "0",
            "PEBBLE_AUTHZREUSE": "0",
        }
        self.spawn(
            [
                find_executable("pebble"),
                "-config",
                str(config),
                "-dnsserver",
                f"127.0.0.1:{resolver_port}",
            ],
            env=env,
        )
        self.started(self._answering)

    def _get(self, port: int, path: str) -> bytes:
        context = ssl.create_default_context(cafile=str(self.tls.ca))
        url = f"https://127.0.0.1:{port}{path}"
        with urllib.request.urlopen(url, timeout=5, context=context) as response:
            return bytes(response.read())

    def _answering(self) -> bool:
        return bool(self._get(self.port, "/dir")) and bool(
            self._get(self.management_port, "/roots/0")
        )

    def intermediate(self) -> x509.Certificate:
        """The intermediate pebble signs leaf certificates with (this run's)."""
        return x509.load_pem_x509_certificate(self._get(self.management_port, "/intermediates/0"))

    def root(self) -> x509.Certificate:
        return x509.load_pem_x509_certificate(self._get(self.management_port, "/roots/0"))


@dataclass
class AcmeClient:
    """One side's ACME client: certbot with lego's acme-dns provider (certbot-dns-multi,
    which runs lego's own DNS provider code), in its own folder (ACME account, keys,
    certificates), holding the acme-dns registration's credentials.

    Why not Debian's `lego` command: Debian builds lego 4.9.1 without its acme-dns
    provider (goacmedns is not packaged; `lego --dns acme-dns` says "unrecognized DNS
    provider"). certbot-dns-multi's wheel carries upstream lego's providers, so the
    /update calls fodns answers here are lego's acme-dns provider's, as `lego --dns
    acme-dns` (and Traefik, which uses lego) send them.

    DNS goes to the resolver only (`--dns-multi-nameservers`: lego follows the
    `_acme-challenge` CNAME through it). No propagation wait: the CA's resolver sees
    fodns's answer as soon as the update returns."""

    folder: Path
    pebble: Pebble
    resolver_port: int
    acme_api: str  # the acme-dns API's base URL
    storage: Path  # the acme-dns storage JSON (the registration, keyed by domain)
    email: str = "admin@shop.test"

    @property
    def credentials(self) -> Path:
        return self.folder / "dns-multi.ini"

    def _certbot(self, *arguments: str) -> subprocess.CompletedProcess[str]:
        self.folder.mkdir(parents=True, exist_ok=True)
        self.credentials.write_text(
            "dns_multi_provider = acme-dns\n"
            f"ACME_DNS_API_BASE = {self.acme_api}\n"
            f"ACME_DNS_STORAGE_PATH = {self.storage}\n"
        )
        self.credentials.chmod(0o600)  # certbot warns about credentials others can read
        command = [
            str(Path(sys.executable).parent / "certbot"),
            *arguments,
            "--non-interactive",
            "--config-dir",
            str(self.folder / "config"),
            "--work-dir",
            str(self.folder / "work"),
            "--logs-dir",
            str(self.folder / "logs"),
        ]
        environment = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(self.folder),
            # pebble's HTTPS certificate is ours; no proxy variables are passed on.
            "REQUESTS_CA_BUNDLE": str(self.pebble.tls.ca),
        }
        done = subprocess.run(
            command,
            env=environment,
            capture_output=True,
            text=True,
            timeout=CLIENT_TIMEOUT,
            stdin=subprocess.DEVNULL,
        )
        with (self.folder / "client.out").open("a") as log:
            log.write(f"$ {' '.join(command)}\n{done.stdout}{done.stderr}")
        return done

    def obtain(self, domain: str) -> subprocess.CompletedProcess[str]:
        return self._certbot(
            "certonly",
            "--server",
            self.pebble.directory_url,
            "--agree-tos",
            "--email",
            self.email,
            "--domain",
            domain,
            "--authenticator",
            "dns-multi",
            "--dns-multi-credentials",
            str(self.credentials),
            "--dns-multi-nameservers",
            f"127.0.0.1:{self.resolver_port}",
            "--dns-multi-propagation-seconds",
            "0",
        )

    def renew(self, domain: str) -> subprocess.CompletedProcess[str]:
        """Renew now, as the renewal timer would once it is due (pebble's certificates
        last years): the same CA, plugin and settings, from certbot's renewal config."""
        return self._certbot(
            "renew", "--cert-name", domain, "--force-renewal", "--no-random-sleep-on-renew"
        )

    def certificate(self, domain: str) -> x509.Certificate:
        """The leaf certbot keeps for `domain` (its live link: the latest one)."""
        pem = (self.folder / "config" / "live" / domain / "cert.pem").read_bytes()
        return x509.load_pem_x509_certificate(pem)

    def chain(self, domain: str) -> list[x509.Certificate]:
        pem = (self.folder / "config" / "live" / domain / "chain.pem").read_bytes()
        return x509.load_pem_x509_certificates(pem)
