"""schemathesis against a real `fodns serve` for minutes: the long run of the contract
test (tests/test_contract.py), with a seed of its own and a larger budget.

It starts `fodns serve` with the example zone and `--workers` DNS processes on
loopback ports the OS picks, runs `st run` against /v1/openapi.json with every check
and every phase (examples, coverage, fuzzing, stateful), and prints the command, the
failures by kind and the test-case counts schemathesis reports; the JSON record (with
its provenance) goes to benchmarks/out/contract-<date>.json. Exit status 0 only when
schemathesis found nothing.

    nice .venv/bin/python benchmarks/contract.py [--seed 20261202] [--max-examples 300]
        [--max-time 300] [--workers 2]
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from provenance import REPOSITORY, print_report, provenance

sys.path.insert(0, str(REPOSITORY))

from tests.support import contract_run, start_with_config

TOKEN = "contract-benchmark-token-0b7d"
# schemathesis's summary lines: "❌ ST202 Schema-valid request rejected: 10" and
# "  705 generated, 12 found 12 unique failures, 28 skipped".
FAILURE_KIND = re.compile(r"❌\s+(ST\d+ [^:\n]+|[A-Z][^:\n]+):\s+(\d+)")
CASES = re.compile(r"(\d+) generated(?:, (\d+) found (\d+) unique failures)?(?:, (\d+) skipped)?")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=20261202)
    parser.add_argument("--max-examples", type=int, default=300, help="cases per operation")
    parser.add_argument(
        "--max-time",
        type=int,
        default=300,
        help="seconds: fuzzing and the stateful phase repeat until they are spent "
        "(0: no budget, the run ends after --max-examples of each)",
    )
    parser.add_argument("--workers", type=int, default=2, help="fodns's DNS processes")
    return parser.parse_args(argv)


def summary(output: str) -> dict[str, Any]:
    """The failures by kind and the case counts, read from schemathesis's summary."""
    tail = output[output.rfind("SUMMARY") :] if "SUMMARY" in output else output
    kinds = {kind.strip(): int(count) for kind, count in FAILURE_KIND.findall(tail)}
    cases = CASES.search(tail)
    generated, _, unique, skipped = cases.groups() if cases else (None, None, None, None)
    return {
        "failures_by_kind": kinds,
        "cases_generated": int(generated) if generated else None,
        "unique_failures": int(unique) if unique else 0,
        "cases_skipped": int(skipped) if skipped else 0,
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    record = provenance(
        "none: a correctness run; every reply is checked against /v1/openapi.json by "
        "schemathesis (counts and failures, no timing compared)",
        argv,
        __file__,
    )
    print_report(record)
    with tempfile.TemporaryDirectory(prefix="fodns-contract-") as temporary:
        directory = Path(temporary)
        # schemathesis makes up webhook URLs: nothing may ever be sent to them.
        running = start_with_config(
            directory, TOKEN, workers=args.workers, extra="[webhooks]\nenabled = false\n"
        )
        try:
            command = contract_run(
                running, TOKEN, args.seed, args.max_examples, args.max_time, directory / "report"
            )
            print("$", " ".join(command).replace(TOKEN, "$TOKEN"), flush=True)
            began = time.monotonic()
            finished = subprocess.run(
                command,
                capture_output=True,
                text=True,
                cwd=directory,
                timeout=(args.max_time or 3600) + 300,
                check=False,
            )
            seconds = round(time.monotonic() - began, 1)
            alive = running.alive()
        finally:
            exit_status = running.stop()
    print(finished.stdout[-30_000:], finished.stderr[-5_000:], sep="\n")
    found = summary(finished.stdout)
    results = {
        "provenance": record,
        "seed": args.seed,
        "max_examples": args.max_examples,
        "max_time": args.max_time,
        "workers": args.workers,
        "seconds": seconds,
        "schemathesis_exit_status": finished.returncode,
        "fodns_alive_after": alive,
        "fodns_exit_status": exit_status,
        **found,
    }
    output = REPOSITORY / "benchmarks" / "out"
    output.mkdir(parents=True, exist_ok=True)
    path = output / f"contract-{time.strftime('%Y%m%dT%H%M%S')}.json"
    path.write_text(json.dumps(results, indent=2) + "\n")
    print(
        f"seed {args.seed}, workers={args.workers}: {found['cases_generated']} cases in "
        f"{seconds} s, {found['unique_failures']} unique failures "
        f"{found['failures_by_kind'] or ''}; fodns alive {alive}, exit {exit_status}; "
        f"record in {path}"
    )
    return 0 if finished.returncode == 0 and alive and exit_status == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
