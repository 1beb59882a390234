"""What response rate limiting costs per UDP query, in instructions (valgrind), not seconds.

    .venv/bin/python benchmarks/rrl_cost.py [--batches 300]

On a machine shared with other work, timings of a few percent drown in noise;
instruction counts do not. This runs the real batched UDP path in-process (a
QueryHandler on the example zone, a BatchedUdpReader on a loopback socket, a
client socket sending batches of 64 queries and reading the replies) under
`valgrind --tool=cachegrind`, once with no batches and once with `--batches`,
for each RRL mode:

- off: no limiter;
- default: RRL as shipped, the client's 127.0.0.1 exempt;
- counted: nothing exempt and a limit no batch reaches, so every reply is
  classified and counted, as a remote client's is.

The difference of the two counts divided by the queries is the user-space
instructions per query, client included (the same in every mode); kernel work
is not counted. Needs the Debian package `valgrind`. Results: stdout and
benchmarks/out/rrl_cost.json.
"""

from __future__ import annotations

import argparse
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

from groups import write_results
from provenance import print_report, provenance
from run import fodns_revision

REPOSITORY = Path(__file__).resolve().parent.parent
PYTHON = REPOSITORY / ".venv" / "bin" / "python"
ZONE = REPOSITORY / "zones" / "fo.example.net.zone"
BATCH = 64
MODES = ("off", "default", "counted")
NAMES = ("www", "mail", "status", "web.apps", "absent{}", "x.preview", "ns1")


def serve_batches(mode: str, batches: int) -> None:
    """The measured work: `batches` batches of queries through the real reader."""
    import dns.message

    from fodns import batchio
    from fodns.config import RateLimitConfig
    from fodns.query import QueryHandler
    from fodns.rrl import ResponseRateLimiter
    from fodns.table import AnswerTable
    from fodns.zone import load_zone_file

    handler = QueryHandler(AnswerTable([load_zone_file(ZONE, "fo.example.net")]))
    limits = {
        "off": None,
        "default": RateLimitConfig(),
        "counted": RateLimitConfig(responses_per_second=10**9, exempt=[]),
    }[mode]
    limiter = ResponseRateLimiter(limits, handler.counters) if limits else None
    server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for sock in (server, client):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2 * 1024 * 1024)
        sock.bind(("127.0.0.1", 0))
    server.setblocking(False)
    reader = batchio.BatchedUdpReader(server, handler, limiter)
    queries = []
    for index in range(BATCH):
        name = NAMES[index % len(NAMES)].format(index) + ".fo.example.net"
        query = dns.message.make_query(name, ("A", "AAAA", "MX")[index % 3], use_edns=0)
        query.id = index
        queries.append(query.to_wire())
    address = server.getsockname()
    for _ in range(batches):
        for query in queries:
            client.sendto(query, address)
        reader.on_readable()
        for _ in queries:
            client.recv(65535)


def instructions(mode: str, batches: int) -> int:
    run = subprocess.run(
        [
            "valgrind",
            "--tool=cachegrind",
            "--cache-sim=no",
            "--cachegrind-out-file=/dev/null",
            str(PYTHON),
            __file__,
            "--inner",
            mode,
            "--batches",
            str(batches),
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=1800,
    )
    found = re.search(r"I\s+refs:\s+([\d,]+)", run.stderr)
    if found is None:
        raise RuntimeError(f"no instruction count from valgrind:\n{run.stderr[-2000:]}")
    return int(found[1].replace(",", ""))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=300, help="batches of 64 queries")
    parser.add_argument("--inner", choices=MODES, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.inner:
        serve_batches(args.inner, args.batches)
        return 0
    if shutil.which("valgrind") is None:
        print("valgrind not found: apt-get install valgrind", file=sys.stderr)
        return 2
    queries = args.batches * BATCH
    record = provenance(
        "RRL off, counted in this same run on the same queries; instructions (cachegrind), "
        "not time, so other work on the machine does not change them",
        argv,
        __file__,
    )
    print_report(record)
    per_query = {}
    for mode in MODES:
        total = instructions(mode, args.batches) - instructions(mode, 0)
        per_query[mode] = round(total / queries)
        print(f"{mode}: {per_query[mode]} instructions per query", flush=True)
    write_results(
        "rrl_cost",
        {
            "provenance": record,
            "command_line": sys.argv,
            "fodns_revision": fodns_revision(),
            "queries": queries,
            "instructions_per_query": per_query,
            "added_by_rrl": {
                mode: f"{per_query[mode] - per_query['off']} "
                f"({(per_query[mode] / per_query['off'] - 1):.1%})"
                for mode in MODES[1:]
            },
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
