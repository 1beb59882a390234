"""dig-driven DNS/EDNS compliance checks, after RFC 8906 section 8 and ISC's ednscomp.

Not a pytest module: tests/conformance/run.sh runs it inside a loopback-only
network namespace while fodns serves there. Each check is one dig command (so
any result can be reproduced by hand) plus what RFC 8906 or the RFC cited
expects of the reply. dig's output is saved per check and server, and a line
per check (PASS, FAIL or INFO, with the reasons) goes to stdout.

    python3 ednscomp.py --zone fo.example.net --server 127.0.0.1 --out DIR [--extended]

--extended adds checks that need the extra names of the conformance copy of the
zone (big.*, many.*, the delegation sub.*): truncation, referrals, wildcards.
The exit status is 0 when every check passed, 1 otherwise.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

DIG_TIMEOUT = 15  # seconds for one dig run, whatever it does


@dataclass
class Reply:
    """What matters of dig's text output for one reply."""

    text: str
    opcode: str = ""
    status: str = ""
    flags: set[str] = field(default_factory=set)
    header_mbz: bool = False
    counts: dict[str, int] = field(default_factory=dict)
    opt: bool = False
    edns_version: int | None = None
    edns_flags: set[str] = field(default_factory=set)
    edns_mbz: str | None = None
    udp: int | None = None
    options: list[str] = field(default_factory=list)
    question: list[str] = field(default_factory=list)
    sections: dict[str, list[list[str]]] = field(default_factory=dict)
    tsig: list[str] = field(default_factory=list)

    def types(self, section: str) -> list[str]:
        return [rr[3] for rr in self.sections.get(section, []) if len(rr) > 3]


_HEADER = re.compile(r";; ->>HEADER<<- opcode: (\S+), status: (\S+), id:")
_FLAGS = re.compile(r";; flags:([^;]*);(.*)")
_EDNS = re.compile(
    r"; EDNS: version: (\d+), flags:([^;]*);(?: MBZ: (0x[0-9a-fA-F]+) ?,)? udp: (\d+)"
)
_OPTION = re.compile(r"; ([A-Z][A-Z0-9=-]*):(?: |$)")


def parse(text: str) -> list[Reply]:
    """Split dig output into replies (dig +keepopen or several questions print several)."""
    replies: list[Reply] = []
    reply: Reply | None = None
    section = ""
    for line in text.splitlines():
        header = _HEADER.search(line)
        if header:
            reply = Reply(text="", opcode=header.group(1), status=header.group(2).rstrip(","))
            replies.append(reply)
            section = ""
            continue
        if reply is None:
            continue
        reply.text += line + "\n"
        flags = _FLAGS.match(line)
        if flags:
            reply.flags = set(flags.group(1).split())
            rest = flags.group(2)
            reply.header_mbz = "MBZ" in rest
            for name, number in re.findall(
                r"(QUERY|ZONE|ANSWER|AUTHORITY|ADDITIONAL|PREREQ|UPDATE): (\d+)", rest
            ):
                reply.counts[name] = int(number)
            continue
        if line.startswith(";; OPT PSEUDOSECTION:"):
            reply.opt = True
            section = "OPT"
            continue
        if line.startswith(";; TSIG PSEUDOSECTION:"):
            section = "TSIG"
            continue
        edns = _EDNS.match(line)
        if edns:
            reply.edns_version = int(edns.group(1))
            reply.edns_flags = set(edns.group(2).split())
            reply.edns_mbz = edns.group(3)
            reply.udp = int(edns.group(4))
            continue
        match = re.match(r";; (QUESTION|ANSWER|AUTHORITY|ADDITIONAL|ZONE) SECTION:", line)
        if match:
            section = match.group(1)
            continue
        if not line.strip():
            if section not in ("OPT",):
                section = ""
            continue
        if section == "OPT":
            option = _OPTION.match(line)
            if option:
                reply.options.append(option.group(1))
        elif section in ("QUESTION", "ZONE"):
            reply.question.append(line.lstrip(";"))
        elif section == "TSIG":
            reply.tsig.append(line)
        elif section and not line.startswith(";"):
            reply.sections.setdefault(section, []).append(line.split())
    return replies


Check = Callable[[Reply, dict[str, Reply]], list[str]]


def expect(
    *,
    status: str | tuple[str, ...] | None = None,
    aa: bool | None = None,
    tc: bool | None = None,
    answer_type: str | None = None,
    answer_empty: bool | None = None,
    answer_count: int | None = None,
    no_answer_type: str | None = None,
    authority_type: str | None = None,
    additional_type: str | None = None,
    opt: bool | None = None,
    version0: bool = False,
    no_option: tuple[str, ...] = (),
    no_edns_mbz: bool = False,
    no_header_mbz: bool = False,
    do: bool | None = None,
    do_like: str | None = None,
    question_echo: str | None = None,
    tsig_error: str | None = None,
    extra: Check | None = None,
) -> Check:
    """Build a check from the expectations RFC 8906 writes as 'expect: ...' lines."""

    def check(reply: Reply, earlier: dict[str, Reply]) -> list[str]:
        bad: list[str] = []
        statuses = (status,) if isinstance(status, str) else status
        if statuses is not None and reply.status not in statuses:
            bad.append(f"status {reply.status}, expected {'/'.join(statuses)}")
        if aa is not None and ("aa" in reply.flags) != aa:
            bad.append("aa set" if not aa else "aa not set")
        if tc is not None and ("tc" in reply.flags) != tc:
            bad.append("tc set" if not tc else "tc not set")
        if answer_type and answer_type not in reply.types("ANSWER"):
            bad.append(f"no {answer_type} in answer")
        if no_answer_type and no_answer_type in reply.types("ANSWER"):
            bad.append(f"{no_answer_type} in answer")
        if answer_empty is not None and bool(reply.sections.get("ANSWER")) == answer_empty:
            bad.append("answer not empty" if answer_empty else "answer empty")
        if answer_count is not None and len(reply.sections.get("ANSWER", [])) != answer_count:
            bad.append(
                f"{len(reply.sections.get('ANSWER', []))} answer records, not {answer_count}"
            )
        if authority_type and authority_type not in reply.types("AUTHORITY"):
            bad.append(f"no {authority_type} in authority")
        if additional_type and additional_type not in reply.types("ADDITIONAL"):
            bad.append(f"no {additional_type} in additional")
        if opt is not None and reply.opt != opt:
            bad.append("OPT present" if not opt else "no OPT record")
        if version0 and reply.opt and reply.edns_version != 0:
            bad.append(f"EDNS version {reply.edns_version}, expected 0")
        for name in no_option:
            if any(o == name or o.startswith(name) for o in reply.options):
                bad.append(f"option {name} echoed")
        if no_edns_mbz and reply.edns_mbz:
            bad.append(f"EDNS MBZ {reply.edns_mbz} echoed (unknown EDNS flag copied)")
        if no_header_mbz and reply.header_mbz:
            bad.append("header Z bit (MBZ) echoed")
        if do is not None and ("do" in reply.edns_flags) != do:
            bad.append("DO set" if not do else "DO not set")
        if do_like is not None:
            reference = earlier.get(do_like)
            if (
                reference is not None
                and "do" in reference.edns_flags
                and "do" not in reply.edns_flags
            ):
                bad.append(f"DO=0, but {do_like} answered DO=1 (RFC 3225 section 3: copy DO)")
        if question_echo is not None and not any(
            q.split()[0] == question_echo for q in reply.question if q.split()
        ):
            bad.append(f"question not echoed as {question_echo} ({reply.question})")
        if tsig_error is not None:
            if not reply.tsig:
                bad.append(
                    f"no TSIG record in reply (expected unsigned TSIG with error {tsig_error})"
                )
            elif not any(tsig_error in line for line in reply.tsig):
                bad.append(f"TSIG error is not {tsig_error}")
        if extra is not None:
            bad.extend(extra(reply, earlier))
        return bad

    return check


@dataclass
class Test:
    name: str
    ref: str
    args: list[str]
    check: Check
    info_only: bool = False  # reported, never counted as a failure


def basic_tests(zone: str) -> list[Test]:
    z = zone
    soa_ok = {"status": "NOERROR", "answer_type": "SOA", "aa": True}
    edns_ok = {**soa_ok, "opt": True, "version0": True}
    badvers = {"status": "BADVERS", "no_answer_type": "SOA", "opt": True, "version0": True}
    return [
        # RFC 8906 section 8.1: basic DNS
        Test("dns", "RFC8906 8.1.1", ["+noedns", "+noad", "+norec", "soa", z], expect(**soa_ok)),
        Test(
            "unknowntype",
            "RFC8906 8.1.2",
            ["+noedns", "+noad", "+norec", "type1000", z],
            expect(status="NOERROR", answer_empty=True, aa=True),
        ),
        Test(
            "cd",
            "RFC8906 8.1.3.1",
            ["+noedns", "+noad", "+norec", "+cd", "soa", z],
            expect(**soa_ok),
        ),
        Test("ad", "RFC8906 8.1.3.2", ["+noedns", "+norec", "+ad", "soa", z], expect(**soa_ok)),
        Test(
            "zflag",
            "RFC8906 8.1.3.3",
            ["+noedns", "+noad", "+norec", "+zflag", "soa", z],
            expect(**soa_ok, no_header_mbz=True),
        ),
        Test(
            "opcode",
            "RFC8906 8.1.4",
            ["+noedns", "+noad", "+opcode=15", "+norec", "+header-only"],
            expect(status="NOTIMP", no_answer_type="SOA", aa=False),
        ),
        Test(
            "tcp",
            "RFC8906 8.1.5",
            ["+noedns", "+noad", "+norec", "+tcp", "soa", z],
            expect(**soa_ok),
        ),
        # RFC 8906 section 8.2: extended DNS
        Test(
            "edns",
            "RFC8906 8.2.1",
            ["+nocookie", "+edns=0", "+noad", "+norec", "soa", z],
            expect(**edns_ok),
        ),
        Test(
            "edns1",
            "RFC8906 8.2.2",
            ["+nocookie", "+edns=1", "+noednsneg", "+noad", "+norec", "soa", z],
            expect(**badvers, aa=False),
        ),
        Test(
            "ednsopt",
            "RFC8906 8.2.3",
            ["+nocookie", "+edns=0", "+noad", "+norec", "+ednsopt=100", "soa", z],
            expect(**edns_ok, no_option=("OPT=100",)),
        ),
        Test(
            "ednsflags",
            "RFC8906 8.2.4",
            ["+nocookie", "+edns=0", "+noad", "+norec", "+ednsflags=0x40", "soa", z],
            expect(**edns_ok, no_edns_mbz=True),
        ),
        Test(
            "edns1flags",
            "RFC8906 8.2.5",
            ["+nocookie", "+edns=1", "+noednsneg", "+noad", "+norec", "+ednsflags=0x40", "soa", z],
            expect(**badvers, aa=False, no_edns_mbz=True),
        ),
        Test(
            "edns1opt",
            "RFC8906 8.2.6",
            ["+nocookie", "+edns=1", "+noednsneg", "+noad", "+norec", "+ednsopt=100", "soa", z],
            expect(**badvers, no_option=("OPT=100",)),
        ),
        Test(
            "edns@512",
            "RFC8906 8.2.7",
            ["+nocookie", "+norec", "+dnssec", "+bufsize=512", "+ignore", "dnskey", z],
            # TC is only expected when the DNSKEY answer does not fit; fodns has none.
            expect(status="NOERROR", opt=True, version0=True),
        ),
        Test(
            "do",
            "RFC8906 8.2.8",
            ["+nocookie", "+edns=0", "+noad", "+norec", "+dnssec", "soa", z],
            expect(**edns_ok),
        ),
        Test(
            "edns1do",
            "RFC8906 8.2.9",
            ["+nocookie", "+edns=1", "+noednsneg", "+noad", "+norec", "+dnssec", "soa", z],
            expect(**badvers, aa=False, do_like="do"),
        ),
        Test(
            "optlist",
            "RFC8906 8.2.10",
            [
                "+edns=0",
                "+noad",
                "+norec",
                "+cookie",
                "+nsid",
                "+expire",
                "+subnet=0.0.0.0/0",
                "soa",
                z,
            ],
            expect(**edns_ok),
        ),
        # ednscomp's further columns
        Test(
            "ednstcp",
            "ednscomp ednstcp",
            ["+nocookie", "+edns=0", "+noad", "+norec", "+tcp", "soa", z],
            expect(**edns_ok),
        ),
        Test(
            "edns512tcp",
            "ednscomp edns512tcp",
            ["+nocookie", "+norec", "+dnssec", "+bufsize=512", "+tcp", "dnskey", z],
            expect(status="NOERROR", opt=True, version0=True, tc=False),
        ),
        Test(
            "docookie",
            "ednscomp docookie / RFC7873",
            ["+edns=0", "+noad", "+norec", "+cookie", "soa", z],
            expect(**edns_ok),
        ),
        Test(
            "ednsflags-all",
            "RFC6891 6.1.4",
            ["+nocookie", "+edns=0", "+norec", "+ednsflags=0x7fff", "soa", z],
            expect(**edns_ok, no_edns_mbz=True, do=False),
        ),
        Test(
            "bufsize<512",
            "RFC6891 6.2.5",
            ["+nocookie", "+norec", "+bufsize=100", "soa", z],
            expect(**edns_ok),
        ),
        Test(
            "0x20",
            "RFC1035 7.1 / draft-vixie-dnsext-dns0x20",
            ["+norec", "soa", _mixed_case(z)],
            expect(**edns_ok, question_echo=_mixed_case(z) + "."),
        ),
    ]


def _mixed_case(name: str) -> str:
    return "".join(c.upper() if i % 2 else c.lower() for i, c in enumerate(name))


def extended_tests(zone: str) -> list[Test]:
    z = zone
    negative = {"authority_type": "SOA", "aa": True}
    return [
        Test(
            "trunc-noedns",
            "RFC1035 4.2.1 / RFC2181 9",
            ["+noedns", "+norec", "+ignore", "txt", f"big.{z}"],
            expect(status="NOERROR", tc=True, opt=False),
        ),
        Test(
            "trunc-edns512",
            "RFC6891 7 / Zonemaster NAMESERVER13",
            ["+nocookie", "+norec", "+bufsize=512", "+ignore", "txt", f"big.{z}"],
            expect(status="NOERROR", tc=True, opt=True, version0=True),
        ),
        Test(
            "trunc-edns512-do",
            "RFC6891 7 / RFC3225 3",
            ["+nocookie", "+norec", "+dnssec", "+bufsize=512", "+ignore", "txt", f"big.{z}"],
            expect(status="NOERROR", tc=True, opt=True, do=True),
        ),
        Test(
            "big-tcp",
            "RFC7766 / RFC1035 4.2.2",
            ["+nocookie", "+norec", "+tcp", "txt", f"big.{z}"],
            expect(status="NOERROR", tc=False, answer_count=25, aa=True),
        ),
        Test(
            "many-noedns",
            "RFC1035 4.2.1",
            ["+noedns", "+norec", "+ignore", "a", f"many.{z}"],
            expect(status="NOERROR", tc=True),
        ),
        Test(
            "many-edns4096",
            "RFC6891 6.2.5",
            ["+nocookie", "+norec", "+bufsize=4096", "+ignore", "a", f"many.{z}"],
            expect(status="NOERROR", tc=False, answer_count=40, aa=True),
        ),
        Test(
            "referral",
            "RFC1034 4.3.2 step 3b",
            ["+nocookie", "+norec", "a", f"www.sub.{z}"],
            expect(
                status="NOERROR",
                aa=False,
                answer_empty=True,
                authority_type="NS",
                additional_type="A",
            ),
        ),
        Test(
            "ds-at-cut",
            "RFC4035 3.1.4.1",
            ["+nocookie", "+norec", "ds", f"sub.{z}"],
            expect(status="NOERROR", answer_empty=True, **negative),
        ),
        Test(
            "ds-at-apex",
            "RFC4035 3.1.4.1 (authoritative for the child only)",
            ["+nocookie", "+norec", "ds", z],
            expect(status="NOERROR", answer_empty=True, **negative),
            info_only=True,
        ),
        Test(
            "nxdomain",
            "RFC2308 / RFC1034 4.3.2",
            ["+nocookie", "+norec", "a", f"nonexistent.{z}"],
            expect(status="NXDOMAIN", **negative),
        ),
        Test(
            "ent-nodata",
            "RFC8020 / RFC2308 2.2",
            ["+nocookie", "+norec", "a", f"apps.{z}"],
            expect(status="NOERROR", answer_empty=True, **negative),
        ),
        Test(
            "below-cname",
            "RFC1034 4.3.2",
            ["+nocookie", "+norec", "a", f"x.status.{z}"],
            expect(status="NXDOMAIN", **negative),
        ),
        Test(
            "wildcard",
            "RFC4592 3.3.1",
            ["+nocookie", "+norec", "a", f"foo.preview.{z}"],
            expect(status="NOERROR", answer_type="A", aa=True),
        ),
        Test(
            "cname-chain",
            "RFC1034 4.3.2 step 3a",
            ["+nocookie", "+norec", "aaaa", f"status.{z}"],
            expect(status="NOERROR", answer_type="AAAA", aa=True),
        ),
        Test(
            "any",
            "RFC8482 4",
            ["+nocookie", "+norec", "any", z],
            expect(status="NOERROR", answer_empty=False, aa=True),
        ),
        Test(
            "not-our-zone",
            "RFC1034 4.3.2 / common practice",
            ["+nocookie", "+norec", "a", "example.org"],
            expect(status="REFUSED", aa=False),
        ),
        Test(
            "qdcount0",
            "RFC7873 5.4 / RFC9619",
            ["+nocookie", "+norec", "+header-only"],
            expect(status=("FORMERR", "NOERROR")),
        ),
        Test(
            "notify",
            "RFC1996",
            ["+nocookie", "+norec", "+opcode=notify", "soa", z],
            expect(status=("NOTIMP", "REFUSED", "NOTAUTH", "NOERROR")),
            info_only=True,
        ),
        Test(
            "update",
            "RFC2136 3",
            ["+nocookie", "+norec", "+opcode=update", "soa", z],
            expect(status=("NOTIMP", "REFUSED")),
        ),
        Test(
            "chaos-version",
            "(no RFC; operators' habit)",
            ["+nocookie", "+norec", "-c", "ch", "txt", "version.bind"],
            expect(status=("REFUSED", "NOTIMP", "NOERROR", "NXDOMAIN")),
            info_only=True,
        ),
        Test(
            "tsig-badkey",
            "RFC8945 5.2.2 and 5.3.2",
            ["+nocookie", "+norec", "-y", "hmac-sha256:nokey.example:c2VjcmV0c2VjcmV0", "soa", z],
            expect(status="NOTAUTH", tsig_error="BADKEY", question_echo=z + "."),
        ),
        Test(
            "tcp-pipeline",
            "RFC7766 6.2.1.1",
            ["+nocookie", "+norec", "+tcp", "+keepopen", z, "soa", f"www.{z}", "a"],
            expect(status="NOERROR", aa=True),
        ),
    ]


def run_dig(server: str, args: list[str]) -> str:
    command = ["dig", f"@{server}", "+time=3", "+tries=1", *args]
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=DIG_TIMEOUT, check=False
        )
    except subprocess.TimeoutExpired:
        return f";; {' '.join(command)}\n;; timed out after {DIG_TIMEOUT} s\n"
    return f";; {' '.join(command)}\n{done.stdout}{done.stderr}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--zone", required=True)
    parser.add_argument("--server", action="append", required=True)
    parser.add_argument("--out", type=Path, required=True, help="folder for raw dig outputs")
    parser.add_argument("--extended", action="store_true")
    args = parser.parse_args(argv)
    tests = basic_tests(args.zone) + (extended_tests(args.zone) if args.extended else [])
    args.out.mkdir(parents=True, exist_ok=True)
    failures = passes = infos = 0
    for server in args.server:
        earlier: dict[str, Reply] = {}
        for test in tests:
            text = run_dig(server, test.args)
            safe = re.sub(r"[^A-Za-z0-9_.@-]", "_", f"{test.name}_{server}")
            (args.out / f"{safe}.txt").write_text(text)
            replies = parse(text)
            command = "dig @" + server + " " + " ".join(test.args)
            if not replies:
                problems = ["no reply parsed from dig (timeout or transfer failure)"]
            else:
                problems = []
                for reply in replies:
                    problems.extend(test.check(reply, earlier))
                earlier[test.name] = replies[0]
            # "tsig indicates error" is dig reading an unsigned error TSIG, which is
            # what RFC 8945 §5.3.2 wants for BADKEY; only a missing TSIG is a fault.
            if "expected a TSIG or SIG(0)" in text:
                problems.append("dig: Couldn't verify signature: expected a TSIG or SIG(0)")
            if problems and test.info_only:
                verdict = "INFO"
                infos += 1
            elif problems:
                verdict = "FAIL"
                failures += 1
            else:
                verdict = "PASS"
                passes += 1
            summary = ""
            if replies:
                first = replies[0]
                summary = (
                    f"status={first.status} flags={','.join(sorted(first.flags))}"
                    f" edns={first.edns_version if first.opt else '-'}"
                    f"{'/do' if 'do' in first.edns_flags else ''}"
                )
            line = f"{verdict:4} {test.name:16} {server:10} [{test.ref}] {summary}"
            if problems:
                line += " -- " + "; ".join(problems)
            print(line)
            print(f"       {command}")
    print(f"ednscomp: {passes} passed, {failures} failed, {infos} informational")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
