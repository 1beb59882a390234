"""The `fodns` command line: `fodns serve` runs the server; client commands come next."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from fodns import __version__
from fodns.client import add_client_commands, run_client
from fodns.config import load_config
from fodns.errors import FodnsError
from fodns.logs import configure_logging


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fodns", description="Authoritative DNS for failover groups"
    )
    parser.add_argument("--version", action="version", version=f"fodns {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the DNS server and the admin API")
    serve.add_argument("--config", type=Path, help="TOML config file (default: the example zone)")
    serve.add_argument(
        "--dns-listen",
        action="append",
        metavar="HOST:PORT",
        help="DNS listen address, UDP and TCP (repeatable; replaces [dns] listen)",
    )
    serve.add_argument("--api-listen", metavar="HOST:PORT", help="admin API listen address")
    serve.add_argument("--db", metavar="PATH", help="SQLite database path")
    serve.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    add_client_commands(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command != "serve":
        return run_client(args)
    configure_logging(args.log_level)
    if args.command == "serve":
        from fodns.service import serve

        try:
            config = load_config(args.config, args.dns_listen, args.api_listen, args.db)
            serve(config)
        except FodnsError as exc:
            print(f"fodns: error: {exc}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
