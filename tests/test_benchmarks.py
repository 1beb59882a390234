"""Benchmarks say where their numbers come from (benchmarks/provenance.py): a tiny run of
benchmarks/groups.py measured against this very commit, and the record's code state on
a scratch repository."""

from __future__ import annotations

import datetime
import importlib.util
import json
import os
import platform
import shlex
import subprocess
import sys
from pathlib import Path
from types import ModuleType

from tests.support import REPOSITORY

BENCHMARKS = REPOSITORY / "benchmarks"


def git(*command: str, cwd: Path = REPOSITORY) -> str:
    return subprocess.run(
        ["git", "-C", str(cwd), "-c", "user.name=t", "-c", "user.email=t@example.net", *command],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


def load_provenance() -> ModuleType:
    """benchmarks/provenance.py as a module (benchmarks/ is scripts, not a package)."""
    spec = importlib.util.spec_from_file_location("provenance", BENCHMARKS / "provenance.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_benchmark_run_records_command_commit_machine_date_and_reference(
    tmp_path: Path,
) -> None:
    """groups.py in a tiny mode, with --against HEAD: the before/after comparison and
    the provenance come from one invocation, and say so."""
    out = tmp_path / "groups.json"
    arguments = ["--groups", "50", "--apps", "5", "--switches", "3", "--workers", "1"]
    arguments += ["--against", "HEAD", "--out", str(out)]
    command = [sys.executable, str(BENCHMARKS / "groups.py"), *arguments]
    started = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
    run = subprocess.run(command, cwd=REPOSITORY, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    document = json.loads(out.read_text())
    record = document["provenance"]

    head = git("rev-parse", "HEAD")
    assert record["commit"] == head
    assert record["dirty"] == bool(git("status", "--porcelain"))
    assert shlex.split(record["command_line"]) == command
    assert started <= datetime.datetime.fromisoformat(record["date"])
    box = record["machine"]
    assert box["cpu_model"] and box["cpu_model"] != "unknown"
    assert box["cpus"] == os.cpu_count()
    assert box["kernel"] == platform.release()
    assert box["python"] == platform.python_version()
    assert len(box["load_average_at_start"]) == 3
    assert record["reference"]["against"].startswith(f"{head} (")
    assert "same run" in record["reference"]["how"]
    # The printed report carries it too, for a reader of the terminal or a log.
    assert f"commit:    {head}" in run.stderr
    assert "reference: against: " + head in run.stderr

    # Both sides were measured, and compared number by number.
    assert len(document["this_tree_runs"]) == len(document["against_runs"]) == 1
    serving = document["comparison"]["scale.workers1.seconds_to_serving"]
    assert serving["against"] > 0 and serving["this_tree"] > 0 and serving["ratio"] > 0
    assert document["comparison"]["switches.api_ms_p50"]["ratio"] > 0


def test_the_code_state_says_what_differs_from_the_commit(tmp_path: Path) -> None:
    provenance = load_provenance()
    git("init", "-q", cwd=tmp_path)
    (tmp_path / "fodns").mkdir()
    (tmp_path / "fodns" / "server.py").write_text("answer = 1\n")
    (tmp_path / "README.md").write_text("numbers\n")
    git("add", ".", cwd=tmp_path)
    git("commit", "-q", "-m", "first", cwd=tmp_path)
    commit = git("rev-parse", "HEAD", cwd=tmp_path)

    clean = provenance.code_state(tmp_path)
    assert (clean["commit"], clean["dirty"], clean["fodns_dirty"]) == (commit, False, False)
    assert clean["revision"] == commit[:7]
    assert clean["commit_subject"] == "first"

    (tmp_path / "README.md").write_text("other numbers\n")
    docs_only = provenance.code_state(tmp_path)
    assert (docs_only["dirty"], docs_only["fodns_dirty"]) == (True, False)
    assert docs_only["changed_paths"] == ["README.md"]

    (tmp_path / "fodns" / "server.py").write_text("answer = 2\n")
    server = provenance.code_state(tmp_path)
    assert (server["dirty"], server["fodns_dirty"]) == (True, True)
    assert server["revision"] == commit[:7] + "-dirty"
    assert sorted(server["changed_paths"]) == ["README.md", "fodns/server.py"]


def test_the_health_benchmark_times_a_stopped_server_out_of_dns(tmp_path: Path) -> None:
    """health.py's detection part in a tiny mode (2 groups, 1 round, fall 1): every
    group's stopped server is found down and every worker answers the other side, each
    step after the one before, and the record says where the numbers come from."""
    out = tmp_path / "health.json"
    arguments = ["--part", "detection", "--groups", "2", "--detection-rounds", "1"]
    arguments += ["--fall", "1", "--rise", "1", "--out", str(out)]
    command = [sys.executable, str(BENCHMARKS / "health.py"), *arguments]
    run = subprocess.run(command, cwd=REPOSITORY, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-3000:]
    document = json.loads(out.read_text())
    assert shlex.split(document["provenance"]["command_line"]) == command
    assert document["provenance"]["commit"] == git("rev-parse", "HEAD")

    detection = document["detection"]
    assert detection["summary"]["not_switched"] == 0
    assert len(detection["samples"]) == 2
    for sample in detection["samples"]:
        # Each step after the one before (the log's times are cut to whole
        # milliseconds), all within one interval plus a generous margin for a busy host.
        assert -0.001 <= sample["stop_to_app_down_s"] <= sample["stop_to_switched_s"]
        assert sample["stop_to_switched_s"] <= sample["stop_to_dns_s"] < 10
    assert "every socket answers the other" in run.stdout
