"""Where a benchmark's numbers come from: the exact command, the code, the machine, the
date, and the reference they were measured against. Every benchmark writes this into
its JSON output and prints it with its report, so a number quoted in a README can be
traced to one run."""

from __future__ import annotations

import datetime
import os
import platform
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

REPOSITORY = Path(__file__).resolve().parent.parent


def git(*command: str, cwd: Path = REPOSITORY) -> str:
    """git's output without its last newline; empty when git fails (no checkout, no git)."""
    try:
        run = subprocess.run(
            ["git", "-C", str(cwd), *command],
            capture_output=True,
            text=True,
            check=False,
            timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired):
        return ""
    # Not strip(): `status --porcelain` lines start with a space that is part of them.
    return run.stdout.rstrip("\n") if run.returncode == 0 else ""


def code_state(root: Path = REPOSITORY) -> dict[str, Any]:
    """The commit checked out at `root`, and what differs from it. `dirty` is the whole
    tree (a changed benchmark changes what is measured too); `fodns_dirty` only the
    server's own code, which is what most numbers are about."""
    changed = git("status", "--porcelain", cwd=root).splitlines()
    server_changed = git("status", "--porcelain", "--", "fodns", cwd=root).splitlines()
    commit = git("rev-parse", "HEAD", cwd=root) or "unknown"
    return {
        "commit": commit,
        "commit_subject": git("log", "-1", "--format=%s", cwd=root),
        "dirty": bool(changed),
        "fodns_dirty": bool(server_changed),
        "changed_paths": [line[3:] for line in changed][:50],
        # The short form people quote: "ab12cd3", "-dirty" when the server's code differs.
        "revision": commit[:7] + ("-dirty" if server_changed else ""),
    }


def machine() -> dict[str, Any]:
    """The machine as far as it changes the numbers: CPU model and count, kernel,
    Python, and how busy it was when the run began."""
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text()
    except OSError:
        cpuinfo = ""
    cpu_model = next(
        (
            line.split(":", 1)[1].strip()
            for line in cpuinfo.splitlines()
            if line.startswith("model name")
        ),
        platform.processor() or "unknown",
    )
    return {
        "cpu_model": cpu_model,
        "cpus": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)),
        "kernel": platform.release(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "hostname": platform.node(),
        # Other work on the machine skews every timing: this says whether there was any.
        "load_average_at_start": list(os.getloadavg()),
        "niceness": os.nice(0),
    }


def command_line(arguments: list[str] | None = None, script: str | None = None) -> str:
    """The command as it can be typed again: this Python, the script, its arguments
    (`arguments` when a benchmark's main() was called with a list, else sys.argv's)."""
    words = sys.argv if arguments is None else [script or sys.argv[0], *arguments]
    return shlex.join([sys.executable, *words])


def provenance(
    reference: str | dict[str, Any],
    arguments: list[str] | None = None,
    script: str | None = None,
) -> dict[str, Any]:
    """The record for one run. `reference` says what the numbers were measured against
    in the same run (Knot's version, the previous commit, a run with the feature off),
    or that there was none and the numbers stand alone. `arguments` and `script` as
    main(argv) got them, when not from the command line."""
    return {
        "command_line": command_line(arguments, script),
        "working_directory": os.getcwd(),
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        **code_state(),
        "machine": machine(),
        "reference": reference,
    }


def report_lines(record: dict[str, Any]) -> list[str]:
    """The record as a few lines for a printed report."""
    box = record["machine"]
    load = ", ".join(f"{value:.2f}" for value in box["load_average_at_start"])
    dirty = " (uncommitted changes: " + ", ".join(record["changed_paths"]) + ")"
    reference = record["reference"]
    if isinstance(reference, dict):
        reference = "; ".join(f"{key}: {value}" for key, value in reference.items())
    return [
        f"command:   {record['command_line']}",
        f"commit:    {record['commit']}{dirty if record['dirty'] else ''}",
        f"machine:   {box['cpu_model']}, {box['cpus']} CPUs ({box['cpus_usable']} usable), "
        f"kernel {box['kernel']}, Python {box['python']}, load {load} at start, "
        f"nice {box['niceness']}",
        f"date:      {record['date']}",
        f"reference: {reference}",
    ]


def print_report(record: dict[str, Any], file: Any = None) -> None:
    for line in report_lines(record):
        print(line, file=file or sys.stdout)
