"""Zone data: records by name for one zone, loaded from an RFC 1035 master file."""

from __future__ import annotations

import hashlib
import re
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import dns.exception
import dns.name
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.SOA
import dns.rrset
import dns.tokenizer
import dns.zone
import dns.zonefile

from fodns.errors import ZoneFileError

Name = dns.name.Name
RRset = dns.rrset.RRset

SOA = dns.rdatatype.SOA
NS = dns.rdatatype.NS
CNAME = dns.rdatatype.CNAME
A = dns.rdatatype.A
AAAA = dns.rdatatype.AAAA


def name_to_wire(name: Name) -> bytes:
    """A name's uncompressed wire form (dnspython types it as Optional)."""
    wire = name.to_wire()
    assert wire is not None
    return wire


def wire_key(name: Name) -> bytes:
    """The case-folded wire form of a name: how fodns keys names everywhere.

    bytes.lower() folds only A-Z, exactly DNS's case-insensitivity (RFC 4343 §3);
    length octets are at most 63 and so are never changed by it. Bytes hash once
    and compare in C, where dnspython Names re-fold every label on each hash.
    """
    return name_to_wire(name).lower()


def parent_key(key: bytes) -> bytes:
    """The key of a name's parent: drop the first label."""
    return key[key[0] + 1 :]


def is_at_or_below(key: bytes, ancestor: bytes) -> bool:
    """Whether the name `key` is `ancestor` or inside it, on label boundaries."""
    while len(key) > len(ancestor):
        key = key[key[0] + 1 :]
    return key == ancestor


@dataclass
class ZoneData:
    """Every record of one zone by owner, and every name that exists.

    Names are keyed by `wire_key`. `records` has an entry for each node that
    exists in its own right, with or without records (a failover group with no
    active app exists with none); `names` adds the empty non-terminals above
    them (RFC 8020: a name with descendants exists).
    """

    origin: Name
    origin_key: bytes = b""
    records: dict[bytes, Mapping[int, RRset]] = field(default_factory=dict)
    names: set[bytes] = field(default_factory=set)
    # How many nodes lie strictly below each name: an empty non-terminal
    # exists exactly while its count is above zero.
    descendants: dict[bytes, int] = field(default_factory=dict)
    # Delegation points (NS below the apex): most zones have none, which lets
    # every "is this name below a cut?" question be answered at once.
    cuts: set[bytes] = field(default_factory=set)
    source: str = ""
    # What the zone file held, apart from the SOA serial (see file_digest).
    file_digest: str = ""
    # The names the zone file gives records, as loaded: groups added later are not among them.
    file_names: frozenset[bytes] = frozenset()
    # The zone file's records at names a group holds (the group wins: groups._load_zone,
    # the start-up loader): served again if that group is deleted, as a restart would.
    taken_by_groups: dict[bytes, Mapping[int, RRset]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.origin_key = wire_key(self.origin)
        self.names.add(self.origin_key)

    @property
    def soa(self) -> RRset:
        return self.records[self.origin_key][SOA]

    @property
    def serial(self) -> int:
        return int(self.soa[0].serial)

    def file_labels(self) -> frozenset[str]:
        """The labels just below the apex that the zone file's names use (`www` for
        www.zone and for a.www.zone): names no failover group may take."""
        labels = set()
        for key in self.file_names:
            if key == self.origin_key:
                continue
            relative = key[: len(key) - len(self.origin_key)]
            index = 0
            while index + relative[index] + 1 < len(relative):  # walk to the last label
                index += relative[index] + 1
            labels.add(relative[index + 1 : index + 1 + relative[index]].decode("ascii", "replace"))
        return frozenset(labels)

    def rrset(self, key: bytes, rdtype: int) -> RRset | None:
        return self.records.get(key, {}).get(rdtype)

    def is_cut(self, key: bytes) -> bool:
        """A delegation point: NS records at a name below the apex (RFC 1034 §4.2.1)."""
        return key in self.cuts

    def set_records(self, name: Name, rrsets: Mapping[int, RRset] | None) -> None:
        """Replace every record at `name`; None deletes the node, {} keeps it empty."""
        if not name.is_subdomain(self.origin):
            raise ZoneFileError(f"{name} is not inside zone {self.origin}")
        self.set_records_by_key(wire_key(name), rrsets)

    def set_records_by_key(self, key: bytes, rrsets: Mapping[int, RRset] | None) -> None:
        existed = key in self.records
        if rrsets is not None and NS in rrsets and key != self.origin_key:
            self.cuts.add(key)
        else:
            self.cuts.discard(key)
        if rrsets is not None:
            # A plain dict is copied; another Mapping (a group's records, built on
            # demand) is kept as it is, so storing it does not build its RRsets.
            self.records[key] = dict(rrsets) if isinstance(rrsets, dict) else rrsets
            self.names.add(key)
            if not existed:
                self._count_ancestors(key, +1)
        elif existed:
            del self.records[key]
            self._count_ancestors(key, -1)
            if self.descendants.get(key, 0) == 0 and key != self.origin_key:
                self.names.discard(key)

    def count_new_children(self, count: int) -> None:
        """Count `count` nodes that a bulk load put straight into `records` and `names`
        as new children of the apex (what set_records_by_key counts one by one)."""
        if count:
            self.descendants[self.origin_key] = self.descendants.get(self.origin_key, 0) + count

    def set_serial(self, serial: int) -> None:
        soa = self.soa
        new = dns.rrset.RRset(soa.name, soa.rdclass, soa.rdtype)
        new.update_ttl(soa.ttl)
        old = soa[0]
        # The constructor, not old.replace(serial=...): replace() inspects the
        # signature on every call, and every change to a group moves the serial.
        new.add(
            dns.rdtypes.ANY.SOA.SOA(  # type: ignore[no-untyped-call]  # dnspython: no hints
                old.rdclass,
                old.rdtype,
                old.mname,
                old.rname,
                serial,
                old.refresh,
                old.retry,
                old.expire,
                old.minimum,
            )
        )
        self.records[self.origin_key] = {**self.records[self.origin_key], SOA: new}

    def _count_ancestors(self, key: bytes, delta: int) -> None:
        ancestor = key
        while ancestor != self.origin_key:
            ancestor = parent_key(ancestor)
            count = self.descendants.get(ancestor, 0) + delta
            if count > 0:
                self.descendants[ancestor] = count
                self.names.add(ancestor)
            else:
                self.descendants.pop(ancestor, None)
                if ancestor not in self.records:
                    self.names.discard(ancestor)


def load_zone_file(path: Path, origin: str) -> ZoneData:
    """Read and check one zone file; any problem is one ZoneFileError naming file and line."""
    origin_name = dns.name.from_text(origin)
    try:
        zone = _read_zone_file(path, origin_name)
    except FileNotFoundError as exc:
        raise ZoneFileError(f"{path}: zone file not found") from exc
    except OSError as exc:
        raise ZoneFileError(f"{path}: cannot read zone file: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise ZoneFileError(f"{path}: not a text file: {exc.reason}") from exc
    except dns.exception.SyntaxError as exc:
        raise ZoneFileError(_describe_syntax_error(exc, path)) from exc
    except dns.zone.NoSOA as exc:
        raise ZoneFileError(f"{path}: zone {origin} has no SOA record at its apex") from exc
    except dns.zone.NoNS as exc:
        raise ZoneFileError(f"{path}: zone {origin} has no NS records at its apex") from exc
    except dns.exception.DNSException as exc:
        raise ZoneFileError(f"{path}: {exc}") from exc

    data = ZoneData(origin=origin_name, source=str(path))
    for name, node in zone.nodes.items():
        rrsets: dict[int, RRset] = {}
        for rdataset in node.rdatasets:
            if rdataset.rdclass != dns.rdataclass.IN:
                raise ZoneFileError(
                    f"{path}: {name} has a record of class "
                    f"{dns.rdataclass.to_text(rdataset.rdclass)}; only IN is served"
                )
            rrset = dns.rrset.RRset(name, rdataset.rdclass, rdataset.rdtype)
            rrset.update(rdataset)  # type: ignore[no-untyped-call]
            rrsets[rdataset.rdtype] = rrset
        if CNAME in rrsets and len(rrsets) > 1:
            # RFC 1034 §3.6.2: a CNAME owner has no other data.
            raise ZoneFileError(f"{path}: {name} has a CNAME and other data")
        if rrsets:
            data.set_records(name, rrsets)
    _check_glue(data, path)
    data.file_digest = file_digest(data)
    data.file_names = frozenset(data.records)
    return data


def file_digest(data: ZoneData) -> str:
    """A SHA-256 over every record but the SOA serial, in canonical form and order:
    equal for two loads of the same records, whatever the file's layout."""
    entries = []
    for key, rrsets in data.records.items():
        for rdtype, rrset in rrsets.items():
            rdatas = rrset if rdtype != SOA else [rrset[0].replace(serial=0)]
            for rdata in rdatas:
                rdata_wire = rdata.to_digestable()
                # Length-prefixed fields, so no two different records hash alike.
                head = struct.pack("!BHIH", len(key), rdtype, rrset.ttl, len(rdata_wire))
                entries.append(head[:1] + key + head[1:] + rdata_wire)
    entries.sort()
    return hashlib.sha256(b"".join(entries)).hexdigest()


def _read_zone_file(path: Path, origin: Name) -> dns.zone.Zone:
    """dns.zone.from_file, driven by hand so that every error can name its line."""
    zone = dns.zone.Zone(origin, relativize=False)
    tokenizer = dns.tokenizer.Tokenizer(path.read_text(), str(path))
    with zone.writer(True) as transaction:
        reader = dns.zonefile.Reader(tokenizer, dns.rdataclass.IN, transaction, allow_include=True)
        try:
            reader.read()
        except dns.zonefile.CNAMEAndOtherData:
            # RFC 1034 §3.6.2. Raised once the record's line is consumed: one line back.
            raise dns.exception.SyntaxError(  # type: ignore[no-untyped-call]
                f"{path}:{tokenizer.line_number}: a name has a CNAME and other data"
            ) from None
    zone.check_origin()
    return zone


def _check_glue(data: ZoneData, path: Path) -> None:
    """In-zone nameservers of the apex need addresses, or resolvers cannot reach them."""
    for ns in data.records[data.origin_key][NS]:
        target: Name = ns.target
        target_key = wire_key(target)
        missing_address = data.rrset(target_key, A) is None and data.rrset(target_key, AAAA) is None
        if target.is_subdomain(data.origin) and missing_address:
            raise ZoneFileError(
                f"{path}: nameserver {target} is inside the zone but has no A or AAAA record"
            )


def _describe_syntax_error(exc: dns.exception.SyntaxError, path: Path) -> str:
    """Make dnspython's 'file:line: problem' name the right line and quote it."""
    message = str(exc)
    match = re.match(r"(?:.*):(\d+): (.*)", message)
    if match is None:
        return f"{path}: {message}"
    line_number, problem = int(match.group(1)), match.group(2).rstrip(".")
    if problem == "Text input is malformed" or "CNAME and other data" in problem:
        # Both are raised after the tokenizer consumed the end of the line,
        # so the line number is one past the record that caused them.
        line_number -= 1
    if problem == "Text input is malformed":
        problem = "malformed record data"
    try:
        line = path.read_text(errors="replace").splitlines()[line_number - 1].strip()
    except (OSError, IndexError):
        line = ""
    quoted = f": {line}" if line else ""
    return f"{path}:{line_number}: {problem}{quoted}"
