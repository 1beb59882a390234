"""The `fodns` command line: `fodns serve` runs the server, the other commands call its API."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from fodns import __version__
from fodns.client import run_client
from fodns.commands import DEFAULT_API, STATUS_ERROR, Formatter, add_client_commands
from fodns.config import DEFAULT_API_LISTEN, DEFAULT_DB_PATH, DEFAULT_DNS_LISTEN, load_config
from fodns.errors import FodnsError
from fodns.logs import configure_logging

DESCRIPTION = """\
Authoritative DNS for failover groups.

`fodns serve` runs the DNS server and the admin API. The other commands call that
API: their output is JSON (fodns status prints FAILOVER_STATUS=...), errors go to
stderr with exit status 1. `fodns COMMAND --help` says more."""
EPILOG = f"""\
environment:
  FODNS_API          the admin API's address (default: {DEFAULT_API})
  FODNS_ADMIN_TOKEN  the admin token; fodns serve keeps a generated one in admin-token
                     beside its database (var/admin-token with `make run`)"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fodns",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=Formatter,
    )
    parser.add_argument("--version", action="version", version=f"fodns {__version__}")
    commands = parser.add_subparsers(
        dest="command", required=True, title="commands", metavar="COMMAND"
    )
    serve = commands.add_parser(
        "serve",
        help="run the DNS server and the admin API",
        description="Run the DNS server and the admin API (and the dashboard at the API's "
        "address). Without --config it serves the example zone from zones/ on "
        f"{DEFAULT_DNS_LISTEN}, with the API on {DEFAULT_API_LISTEN} and the database "
        f"in {DEFAULT_DB_PATH}.",
        formatter_class=Formatter,
    )
    serve.add_argument(
        "--config", type=Path, metavar="FILE", help="TOML config file (default: the example zone)"
    )
    serve.add_argument(
        "--dns-listen",
        action="append",
        metavar="HOST:PORT",
        help="DNS listen address, UDP and TCP (repeatable; replaces [dns] listen)",
    )
    serve.add_argument(
        "--api-listen", metavar="HOST:PORT", help="admin API listen address (replaces [api] listen)"
    )
    serve.add_argument("--db", metavar="PATH", help="SQLite database path (replaces [store] path)")
    serve.add_argument(
        "--log-level",
        default="info",
        choices=["debug", "info", "warning", "error"],
        help="the least severe log events written to stderr, as JSON lines (default: info)",
    )
    probe = commands.add_parser(
        "probe",
        help="run fodns's health checks from this host and report them to fodns",
        description="Run every app's health check from this host (another network, "
        "another region) and report what it finds to fodns every --interval seconds "
        "(POST /v1/probes/NAME/reports). fodns counts this probe beside its own view "
        "by each check's quorum; a probe that stops reporting ages out after three "
        "intervals. Runs until stopped.",
        formatter_class=Formatter,
    )
    probe.add_argument(
        "--api", metavar="URL", help=f"fodns's admin API (default: $FODNS_API, else {DEFAULT_API})"
    )
    probe.add_argument("--token", help="the admin token (default: $FODNS_ADMIN_TOKEN)")
    probe.add_argument(
        "--name", required=True, help="this probe's name in fodns, e.g. eu-west (not 'local')"
    )
    probe.add_argument(
        "--interval",
        type=float,
        default=5.0,
        metavar="SECONDS",
        help="how often to report (1 to 3600, default 5)",
    )
    add_client_commands(commands)
    return parser


def run_probe(args: argparse.Namespace) -> int:
    import asyncio
    import os

    from fodns.remoteprobe import RemoteProbe

    token = args.token or os.environ.get("FODNS_ADMIN_TOKEN", "")
    if not token:
        print("fodns: error: no admin token (--token or FODNS_ADMIN_TOKEN)", file=sys.stderr)
        return 1
    if not 1 <= args.interval <= 3600:
        print("fodns: error: --interval must be 1 to 3600 seconds", file=sys.stderr)
        return 2
    api = args.api or os.environ.get("FODNS_API") or DEFAULT_API
    probe = RemoteProbe(api, token, args.name, interval=args.interval)
    try:
        asyncio.run(probe.run())
    except KeyboardInterrupt:
        return 0
    except FodnsError as exc:
        print(f"fodns: error: {exc}", file=sys.stderr)
        return 1
    return 0


def parse(argv: list[str] | None) -> argparse.Namespace:
    """The arguments; a usage error exits 2, except for `fodns status`, whose 2 means
    "none": there any error is 3, so `fodns status APP && job` never runs the job by it."""
    words = sys.argv[1:] if argv is None else argv
    try:
        return build_parser().parse_args(words)
    except SystemExit as exit:
        if exit.code == 2 and words[:1] == ["status"]:
            raise SystemExit(STATUS_ERROR) from None
        raise


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    if args.command == "probe":
        configure_logging("info")
        return run_probe(args)
    if args.command != "serve":
        return run_client(args)
    configure_logging(args.log_level)
    try:
        config = load_config(args.config, args.dns_listen, args.api_listen, args.db)
        # Imported once the config has been read: a mistake in it is reported without
        # first loading the servers, the API and their libraries (most of a second).
        from fodns.service import serve

        serve(config)
    except FodnsError as exc:
        print(f"fodns: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
