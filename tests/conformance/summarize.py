"""Summarize a tests/conformance/run.sh results folder: every finding, sorted by cause.

    python3 summarize.py RESULTS_DIR

Zonemaster messages at NOTICE and above are sorted into: caused by the test set-up
(loopback addresses), by the namespace having no Internet, by the example zone's
data, or "about fodns": anything not known to be one of the others lands there,
so a new message is never hidden. DNSViz errors and warnings, ednscomp FAIL and
INFO lines, ldns-compare-zones differences and named-checkzone output are listed
as they are. Exit status 1 when there is anything about fodns.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

# (testcase, tag) of Zonemaster 4.6 messages whose cause is known not to be fodns.
SETUP = {
    # The name servers are on 127.0.0.1 and 127.0.0.2: loopback, as the netns requires.
    ("ADDRESS01", "NAMESERVER_IP_PRIVATE_NETWORK"),
    ("ZONE01", "Z01_MNAME_HAS_LOCALHOST_ADDR"),
}
NO_INTERNET = {
    # PTR of 127.0.0.x, the RNAME's mail domain example.net, ASN look-ups: all
    # need servers on the Internet, which the namespace cannot reach.
    ("ADDRESS02", "NO_RESPONSE_PTR_QUERY"),
    ("ADDRESS03", "NO_RESPONSE_PTR_QUERY"),
    ("SYNTAX06", "RNAME_MAIL_DOMAIN_INVALID"),
    ("SYNTAX06", "RNAME_MAIL_ILLEGAL_CNAME"),
    ("CONNECTIVITY03", "ASN_INFOS_ANNOUNCE_IN"),
    ("CONNECTIVITY03", "ERROR_ASN_DATABASE"),
    ("CONNECTIVITY03", "EMPTY_ASN_SET"),
    ("CONNECTIVITY03", "IPV4_ONE_ASN"),
    ("CONNECTIVITY03", "IPV6_ONE_ASN"),
    ("CONNECTIVITY03", "IPV4_SAME_ASN"),
    ("CONNECTIVITY03", "IPV6_SAME_ASN"),
}
ZONE_DATA = {
    # What the example zone holds (zones/fo.example.net.zone), not how it is served.
    ("ZONE02", "REFRESH_MINIMUM_VALUE_LOWER"),
    ("DELEGATION01", "NO_IPV6_NS_CHILD"),
    ("DELEGATION01", "NO_IPV6_NS_DEL"),
    ("DNSSEC07", "NEITHER_DNSKEY_NOR_DS"),
    ("UNSPECIFIED", "NOT_SIGNED"),
}
REPORTED_LEVELS = ("NOTICE", "WARNING", "ERROR", "CRITICAL")


def zonemaster(folder: Path, out: list[str]) -> int:
    path = folder / "zonemaster.json"
    if not path.exists() or not path.read_text().strip():
        out.append(f"  zonemaster: no output ({path.name} missing or empty)")
        return 1
    entries: list[dict[str, Any]] = json.loads(path.read_text())
    groups: dict[str, list[str]] = {
        "about fodns": [],
        "set-up": [],
        "no Internet": [],
        "zone data": [],
    }
    for entry in entries:
        if entry["level"] not in REPORTED_LEVELS:
            continue
        key = (entry["testcase"], entry["tag"])
        group = (
            "set-up"
            if key in SETUP
            else "no Internet"
            if key in NO_INTERNET
            else "zone data"
            if key in ZONE_DATA
            else "about fodns"
        )
        args = ", ".join(f"{k}={v}" for k, v in sorted(entry.get("args", {}).items()))
        groups[group].append(f"{entry['level']:8} {entry['testcase']:14} {entry['tag']} ({args})")
    for group, lines in groups.items():
        out.append(f"  zonemaster, {group}: {len(lines)}")
        out.extend(f"    {line}" for line in lines)
    return len(groups["about fodns"])


def dnsviz(folder: Path, out: list[str]) -> int:
    path = folder / "dnsviz-grok.json"
    if not path.exists() or not path.read_text().strip():
        out.append("  dnsviz: no grok output")
        return 1
    found: list[str] = []

    def walk(node: Any, where: str) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key in ("errors", "warnings") and isinstance(value, list):
                    for item in value:
                        found.append(f"{key[:-1].upper()} {where}: {json.dumps(item)}")
                else:
                    walk(value, f"{where}/{key}")
        elif isinstance(node, list):
            for index, value in enumerate(node):
                walk(value, f"{where}[{index}]")

    walk(json.loads(path.read_text()), "")
    out.append(f"  dnsviz grok errors and warnings: {len(found)}")
    out.extend(f"    {line}" for line in found)
    return len(found)


def ednscomp(folder: Path, out: list[str]) -> int:
    path = folder / "ednscomp.txt"
    if not path.exists():
        out.append("  ednscomp: no output")
        return 1
    lines = path.read_text().splitlines()
    failures = 0
    picked: list[str] = []
    for index, line in enumerate(lines):
        if line.startswith(("FAIL", "INFO")):
            failures += line.startswith("FAIL")
            picked.append(line)
            if index + 1 < len(lines):
                picked.append(lines[index + 1])
        elif line.startswith("ednscomp:"):
            out.append(f"  {line}")
    out.extend(f"    {line}" for line in picked)
    return failures


def text_file(folder: Path, name: str, label: str, out: list[str]) -> int:
    path = folder / name
    if not path.exists():
        return 0
    lines = [line for line in path.read_text().splitlines() if line.strip()]
    out.append(f"  {label}: {len(lines)} line(s)")
    out.extend(f"    {line}" for line in lines)
    return 0


def main(argv: list[str]) -> int:
    results = Path(argv[1])
    out: list[str] = [f"fodns conformance summary ({results})"]
    about_fodns = 0
    phase_a = results / "a-example-zone"
    phase_b = results / "b-extended-zone"
    out.append("\n== phase A: zones/fo.example.net.zone on 127.0.0.1, 127.0.0.2")
    about_fodns += zonemaster(phase_a, out)
    about_fodns += dnsviz(phase_a, out)
    about_fodns += ednscomp(phase_a, out)
    compare = phase_a / "ldns-compare-zones.txt"
    if compare.exists():
        # ldns-compare-zones -a prints one line per differing RR and then the
        # counts of inserted (+), deleted (-) and changed (~) names.
        lines = [x for x in compare.read_text().splitlines() if x.strip()]
        counts = re.fullmatch(r"\s*\+(\d+)\s+-(\d+)\s+~(\d+)\s*", lines[-1]) if lines else None
        if counts is None:
            about_fodns += 1
            out.append("  ldns-compare-zones: output not understood:")
        else:
            differences = sum(int(n) for n in counts.groups())
            about_fodns += differences
            out.append(
                f"  ldns-compare-zones (zone file vs data served): {differences} name(s) differ"
            )
        out.extend(f"    {line}" for line in lines)
    text_file(phase_a, "named-checkzone.txt", "named-checkzone (zone file)", out)
    phase_c = results / "c-delegated"
    if phase_c.exists():
        out.append("\n== phase C: Zonemaster delegated from a stand-in root and example.net")
        about_fodns += zonemaster(phase_c, out)
    out.append("\n== phase B: extended copy of the zone on 127.0.0.1, 127.0.0.2, [::1]")
    about_fodns += ednscomp(phase_b, out)
    text_file(results, "exit-status.txt", "tool exit statuses", out)
    out.append(f"\nfindings about fodns: {about_fodns}")
    print("\n".join(out))
    return 1 if about_fodns else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
