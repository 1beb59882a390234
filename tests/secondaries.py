"""Real Knot DNS and NSD secondaries on loopback, pulling a zone from a fodns primary.

Each secondary's configuration is the block docs/secondaries.md tells operators to
write (found by its fenced-block marker), with the documentation addresses, port and
secret replaced, after a preamble of our own that runs the daemon as the user running
the tests, on 127.0.0.1, with all of its state in one directory. So the page cannot
drift from what is tested.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import dns.exception
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import dns.rrset

from tests.support.net import free_port
from tests.support.tsig import SECRET

REPOSITORY = Path(__file__).resolve().parent.parent
GUIDE = REPOSITORY / "docs" / "secondaries.md"
ZONE = "fo.example.net"
# What the guide's blocks say, and so what the harness replaces.
GUIDE_PRIMARY = "192.0.2.1"
GUIDE_PORT = 53
GUIDE_SECRET = "cGxhY2Vob2xkZXItLXJlcGxhY2UtbWUtLW9wZW5zc2w="
START_TIMEOUT = 15.0
STOP_TIMEOUT = 10.0


def find_executable(name: str) -> str:
    # knotd and nsd live in /usr/sbin, which a non-login or non-root PATH may lack.
    search_path = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])
    found = shutil.which(name, path=search_path)
    if found is None:
        raise FileNotFoundError(f"{name} not found: install the Debian packages knot and nsd")
    return found


def guide_block(marker: str, guide: Path = GUIDE) -> str:
    """The fenced block of the guide whose info string is `marker` (exactly one)."""
    pattern = re.compile(rf"^```{re.escape(marker)}[ \t]*\n(.*?)^```[ \t]*$", re.M | re.S)
    blocks = pattern.findall(guide.read_text())
    if len(blocks) != 1:
        raise AssertionError(f"{guide.name}: {len(blocks)} blocks marked ```{marker}, want 1")
    return str(blocks[0])


def localise(block: str, primary_port: int, secret: str) -> str:
    """The guide's block with our primary's address and port and our secret: each
    replacement must happen, and no documentation address may be left."""
    replacements = [
        (f"{GUIDE_PRIMARY}@{GUIDE_PORT}", f"127.0.0.1@{primary_port}"),
        (GUIDE_PRIMARY, "127.0.0.1"),
        (GUIDE_SECRET, secret),
    ]
    for old, new in replacements:
        if old not in block:
            raise AssertionError(f"the guide's block no longer contains {old!r}:\n{block}")
        block = block.replace(old, new)
    leftover = re.search(r"\b(192\.0\.2|198\.51\.100|203\.0\.113)\.\d+", block)
    if leftover:
        raise AssertionError(f"documentation address {leftover[0]} left in:\n{block}")
    return block


@dataclass
class SeenTransfer:
    """One transfer reply that passed through a TransferTap."""

    asked: str  # the query type: "IXFR" or "AXFR"
    kind: str  # the reply's form: "IXFR" (incremental), "AXFR" (whole zone), "SOA" (current)
    serial: int  # the serial the reply brings the secondary to


class TransferTap:
    """A TCP relay on 127.0.0.1 between a secondary and its primary that reads each
    transfer reply going through and tells its form by the first two records: the new
    SOA then the client's older SOA is incremental (RFC 1995 §4), the new SOA then
    anything else is the whole zone (RFC 5936 §2.2), a lone SOA says "you are
    current". NSD logs no such thing, so this is how the tests see which kind NSD
    received. Bytes are forwarded untouched, as they come."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.seen: list[SeenTransfer] = []
        self.lock = threading.Lock()
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        self.listener.settimeout(0.2)
        self.port = int(self.listener.getsockname()[1])
        self.running = True
        self.sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, name="transfer-tap", daemon=True).start()

    def close(self) -> None:
        self.running = False
        self.listener.close()
        for sock in list(self.sockets):
            with contextlib.suppress(OSError):
                sock.close()

    def transfers(self) -> list[SeenTransfer]:
        with self.lock:
            return list(self.seen)

    def _accept(self) -> None:
        while self.running:
            try:
                client, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.upstream_port), timeout=5)
            except OSError:
                client.close()
                continue
            client.settimeout(None)
            upstream.settimeout(None)
            self.sockets += [client, upstream]
            # One table per connection: query ID -> [query type, first reply records].
            open_queries: dict[int, tuple[str, list[dns.rrset.RRset]]] = {}
            for source, sink, replies in ((client, upstream, False), (upstream, client, True)):
                threading.Thread(
                    target=self._pump, args=(source, sink, open_queries, replies), daemon=True
                ).start()

    def _pump(
        self,
        source: socket.socket,
        sink: socket.socket,
        open_queries: dict[int, tuple[str, list[dns.rrset.RRset]]],
        replies: bool,
    ) -> None:
        """Copy `source` to `sink`, reading the DNS messages on the way (TCP framing)."""
        # No timeouts here: a socket's timeout is shared by both directions, so one
        # pump's setting would cut the other's reads short (an idle connection, closed
        # under the secondary after 5 s). Each pump ends when its source closes, and
        # close() closes them all.
        pending = b""
        try:
            while data := source.recv(65536):
                # Read before forwarding: a query must be on record before its reply.
                pending += data
                while len(pending) >= 2 and len(pending) >= 2 + int.from_bytes(pending[:2]):
                    size = int.from_bytes(pending[:2])
                    wire, pending = pending[2 : 2 + size], pending[2 + size :]
                    self._read(wire, open_queries, replies)
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
            if replies:
                with self.lock:
                    for query_id in list(open_queries):
                        self._settle(open_queries.pop(query_id))

    def _read(
        self,
        wire: bytes,
        open_queries: dict[int, tuple[str, list[dns.rrset.RRset]]],
        replies: bool,
    ) -> None:
        try:
            message = dns.message.from_wire(wire, keyring=False, one_rr_per_rrset=True)
        except dns.exception.DNSException:
            return
        with self.lock:
            if not replies:
                if len(message.question) != 1:
                    return
                qtype = dns.rdatatype.to_text(message.question[0].rdtype)
                if qtype in ("AXFR", "IXFR"):
                    if message.id in open_queries:  # an ID reused: the old reply is over
                        self._settle(open_queries.pop(message.id))
                    open_queries[message.id] = (qtype, [])
                return
            if message.id not in open_queries or message.rcode() != dns.rcode.NOERROR:
                return
            qtype, records = open_queries[message.id]
            records += message.answer[: 2 - len(records)]
            if len(records) == 2:
                self._settle(open_queries.pop(message.id))

    def _settle(self, query: tuple[str, list[dns.rrset.RRset]]) -> None:
        """Record one reply's form (under the lock), from its first two records."""
        qtype, records = query
        if not records or records[0].rdtype != dns.rdatatype.SOA:
            return
        serial = int(records[0][0].serial)
        if len(records) == 1:
            kind = "SOA"
        elif records[1].rdtype == dns.rdatatype.SOA and int(records[1][0].serial) != serial:
            kind = "IXFR"
        else:
            kind = "AXFR"
        self.seen.append(SeenTransfer(qtype, kind, serial))


class Secondary:
    """One secondary daemon: its config, its process, and what it serves and logs."""

    name: ClassVar[str]
    marker: ClassVar[str]  # the info string of its block in the guide

    def __init__(self, directory: Path, secret: str = SECRET) -> None:
        self.directory = directory
        self.secret = secret
        # Chosen now, so that the primary can be told where to send NOTIFY first.
        self.port = free_port()
        self.primary_port = 0
        self.process: subprocess.Popen[bytes] | None = None
        directory.mkdir(parents=True, exist_ok=True)

    # ---- what each daemon defines ------------------------------------------------

    def preamble(self) -> str:
        """Our own sections: loopback, unprivileged, state in `directory`."""
        raise NotImplementedError

    def command(self, config: Path) -> list[str]:
        raise NotImplementedError

    def transfers(self) -> list[tuple[str, int]]:
        """Finished incoming transfers from the log, oldest first: ("IXFR" or "AXFR", serial)."""
        raise NotImplementedError

    @property
    def log_files(self) -> list[Path]:
        return [self.directory / f"{self.name}.out"]

    # ---- lifecycle ---------------------------------------------------------------

    def xfr_port(self) -> int:
        """Where the secondary is told the primary is."""
        return self.primary_port

    def config_text(self) -> str:
        return self.preamble() + localise(guide_block(self.marker), self.xfr_port(), self.secret)

    def start(self, primary_port: int) -> None:
        """Start the daemon, pulling from the primary on 127.0.0.1:`primary_port`, and
        wait (bounded) until it answers queries on its own port."""
        self.primary_port = primary_port
        config = self.directory / f"{self.name}.conf"
        config.write_text(self.config_text())
        with self.log_files[0].open("ab") as out:
            self.process = subprocess.Popen(
                self.command(config),
                cwd=self.directory,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own group: NSD forks helpers
            )
        if not self._wait_answering():
            self.stop()
            raise AssertionError(f"{self.name} did not start:\n{self.log_text()[-3000:]}")

    def _wait_answering(self) -> bool:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                return False
            with contextlib.suppress(dns.exception.DNSException, OSError):
                self.query(ZONE, "SOA", timeout=0.2)
                return True
            time.sleep(0.05)
        return False

    def stop(self) -> int | None:
        """SIGTERM to the process we started, a bounded wait, then SIGKILL to its group
        (the daemon and the helpers it forked, nothing else)."""
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

    # ---- what it serves ----------------------------------------------------------

    def query(self, name: str, rdtype: str, timeout: float = 1.0) -> dns.message.Message:
        """One UDP query to the secondary."""
        return dns.query.udp(
            dns.message.make_query(name, rdtype), "127.0.0.1", port=self.port, timeout=timeout
        )

    def serial(self) -> int | None:
        """The SOA serial the secondary serves, or None while it serves no zone."""
        try:
            response = self.query(ZONE, "SOA", timeout=0.5)
        except (dns.exception.DNSException, OSError):
            return None
        if response.rcode() != dns.rcode.NOERROR:
            return None
        for rrset in response.answer:
            if rrset.rdtype == dns.rdatatype.SOA:
                return int(rrset[0].serial)
        return None

    def wait_serial(self, serial: int, timeout: float = 10.0) -> bool:
        """Until the secondary serves `serial` or a later one (bounded)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            served = self.serial()
            if served is not None and served >= serial:
                return True
            time.sleep(0.01)
        return False

    def log_text(self) -> str:
        return "".join(path.read_text(errors="replace") for path in self.log_files if path.exists())


def knot_server_config(directory: Path, port: int, written_by: str) -> str:
    """The `server`, `database`, `control` and `log` sections of a knot.conf for a Knot
    on 127.0.0.1 `port`, run as this user with all its state in `directory`."""
    d = directory
    return (
        f"# Written by {written_by}: loopback, this user, state in one folder.\n"
        "server:\n"
        f'    rundir: "{d}"\n'
        f'    pidfile: "{d}/knot.pid"\n'
        f"    listen: 127.0.0.1@{port}\n"
        "    udp-workers: 1\n"
        "    tcp-workers: 1\n"
        "    background-workers: 1\n"
        "database:\n"
        f'    storage: "{d}"\n'
        "control:\n"
        f'    listen: "{d}/knot.sock"\n'
        "log:\n"
        "  - target: stderr\n"
        "    any: info\n"
    )


class KnotSecondary(Secondary):
    name = "knot"
    marker = "yaml title=knot.conf"

    def preamble(self) -> str:
        d = self.directory
        return (
            knot_server_config(d, self.port, "tests/secondaries.py")
            + f'template:\n  - id: default\n    storage: "{d}"\n\n'
        )

    def command(self, config: Path) -> list[str]:
        return [find_executable("knotd"), "-c", str(config)]

    def transfers(self) -> list[tuple[str, int]]:
        """Knot 3.2 logs two lines (level info) for each transfer that lands:

            [fo.example.net.] IXFR, incoming, remote 127.0.0.1@5300, finished, 0.00 seconds, ...
            [fo.example.net.] refresh, remote 127.0.0.1@5300, zone updated, 0.00 seconds, \
                serial 2026112201 -> 2026112202, expires in 1209600 seconds

        An IXFR answered with the whole zone is logged as "IXFR, incoming, ...,
        receiving AXFR-style IXFR", then "AXFR, incoming, ..., started" and "AXFR, ...,
        finished": the last "finished" before "zone updated" names what arrived."""
        finished = re.compile(
            rf"\[{re.escape(ZONE)}\.\] (AXFR|IXFR), incoming, remote [^,]*, finished"
        )
        updated = re.compile(
            rf"\[{re.escape(ZONE)}\.\] refresh, remote [^,]*, zone updated, .*"
            r"serial (?:none|\d+) -> (\d+)"
        )
        transfers: list[tuple[str, int]] = []
        kind = None
        for line in self.log_text().splitlines():
            if match := finished.search(line):
                kind = match[1]
            elif (match := updated.search(line)) and kind is not None:
                transfers.append((kind, int(match[1])))
                kind = None
        return transfers


class NsdSecondary(Secondary):
    """NSD logs each transfer it takes in (verbosity 1 or more) as

        xfrd: zone fo.example.net committed "received update to serial 2026112202 at
            2026-11-22T07:27:29 from 127.0.0.1@43593 TSIG verified with key xfr"

    and never whether it came as IXFR or AXFR, at any verbosity (4.6.1: only debug
    builds say). So with `tap` (the default) it pulls through a TransferTap, which
    reads the form of each reply on the wire."""

    name = "nsd"
    marker = "text title=nsd.conf"
    VERBOSITY = 2  # the commit lines need 1; 2 adds a line for each NOTIFY received
    COMMITTED = re.compile(
        rf'xfrd: zone {re.escape(ZONE)} committed "received update to serial (\d+) '
    )

    def __init__(self, directory: Path, secret: str = SECRET, tap: bool = True) -> None:
        super().__init__(directory, secret)
        self.use_tap = tap
        self.tap: TransferTap | None = None

    def start(self, primary_port: int) -> None:
        if self.use_tap:
            self.tap = TransferTap(primary_port)
        super().start(primary_port)

    def xfr_port(self) -> int:
        return self.tap.port if self.tap else self.primary_port

    def stop(self) -> int | None:
        status = super().stop()
        if self.tap is not None:
            self.tap.close()
        return status

    @property
    def log_files(self) -> list[Path]:
        return [self.directory / "nsd.out", self.directory / "nsd.log"]

    def preamble(self) -> str:
        d = self.directory
        return (
            "# Written by tests/secondaries.py: loopback, this user, state in one folder.\n"
            "server:\n"
            "    ip-address: 127.0.0.1\n"
            f"    port: {self.port}\n"
            "    do-ip6: no\n"
            "    server-count: 1\n"
            '    username: ""\n'
            '    chroot: ""\n'
            f'    zonesdir: "{d}"\n'
            '    database: ""\n'
            f'    zonelistfile: "{d}/zone.list"\n'
            f'    xfrdfile: "{d}/xfrd.state"\n'
            f'    xfrdir: "{d}"\n'
            f'    pidfile: "{d}/nsd.pid"\n'
            f'    logfile: "{d}/nsd.log"\n'
            f"    verbosity: {self.VERBOSITY}\n"
            "remote-control:\n"
            "    control-enable: no\n"
            "\n"
        )

    def command(self, config: Path) -> list[str]:
        return [find_executable("nsd"), "-d", "-c", str(config)]

    def transfers(self) -> list[tuple[str, int]]:
        """Each transfer NSD committed, in order, with the form the tap saw it arrive in
        (matched in order by serial; "unknown" when the tap did not see it)."""
        seen = [t for t in self.tap.transfers() if t.kind != "SOA"] if self.tap else []
        transfers: list[tuple[str, int]] = []
        for line in self.log_text().splitlines():
            if not (match := self.COMMITTED.search(line)):
                continue
            serial, kind = int(match[1]), "unknown"
            for index, transfer in enumerate(seen):
                if transfer.serial == serial:
                    kind, seen = transfer.kind, seen[index + 1 :]
                    break
            transfers.append((kind, serial))
        return transfers
