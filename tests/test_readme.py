"""The README runs as written: what `make run` prints, the walk-through, the CLI block.

Blocks marked `<!-- readme-test: printed by make run -->` must equal what a fresh
`fodns serve` prints; blocks marked `<!-- readme-test: run -->` are pasted into
bash, in order, against that same fresh server, exactly as a new user would
(only the fixed ports 5353 and 8053 become the ones the OS picked for the test).
Every command must succeed, and print what the `# ->` lines under it say: each
such line is matched in order, `...` standing for anything, and the example label
414-262-781 for whichever label fodns picked. A change that breaks the README
breaks the build.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.support import REPOSITORY, FodnsProcess, start_fodns, wait_for

README = REPOSITORY / "README.md"
MARK = re.compile(r"<!-- readme-test: (?P<kind>[a-z ]+) -->\n```[a-z]*\n(?P<body>.*?)```", re.S)
EXAMPLE_LABEL = "414-262-781"
README_FOLDER = "/home/you/fodns"  # where the README's `make run` stands
# What each line `make run` prints promises, in its own words (its # comment): regexes
# over dig's and curl's output.
PROMISES = {
    "A records, AA set": [
        r"flags: qr aa",
        r"status: NOERROR",
        r"ANSWER SECTION:\n(www\.fo\.example\.net\.\s+3600\s+IN\s+A\s+192\.0\.2\.1[01]\n){2}",
    ],
    "the same over TCP": [r"status: NOERROR", r"IN\s+AAAA\s+2001:db8::10", r"\(TCP\)"],
    "with glue for ns1 and ns2": [r"ADDITIONAL SECTION:\n(ns[12]\.fo\.example\.net\.\s.*\n){2}"],
    "a wildcard (RFC 4592)": [r"status: NOERROR", r"ANSWER SECTION:\nanything\.preview\.fo"],
    "NXDOMAIN with the SOA": [
        r"status: NXDOMAIN",
        r"AUTHORITY SECTION:\nfo\.example\.net\.\s.*SOA",
    ],
    "the whole zone (from this host only)": [r"XFR size: \d+ records", r"IN\s+SOA"],
    "200 when ready, else 503 saying why": [r'"ready": true'],
    "Prometheus metrics": [r"fodns_dns_queries_total\{"],
}


@dataclass
class Command:
    text: str
    expected: list[str] = field(default_factory=list)  # the `# ->` lines under it
    exit_status: int = 0


def marked_blocks(kind: str) -> list[str]:
    return [m["body"] for m in MARK.finditer(README.read_text()) if m["kind"] == kind]


def commands(block: str) -> list[Command]:
    """The block's commands (continuation lines joined) with the `# ->` lines under each."""
    parsed: list[Command] = []
    pending = ""
    for line in block.splitlines():
        stripped = line.strip()
        if stripped.startswith("# ->"):
            expectation = stripped.removeprefix("# ->").strip()
            status = re.fullmatch(r"\(exit status (\d+)\)", expectation)
            if status:
                parsed[-1].exit_status = int(status[1])
            else:
                parsed[-1].expected.append(expectation)
        elif stripped.startswith("#") or not stripped:
            continue
        elif stripped.endswith("\\"):
            pending += stripped[:-1] + " "
        else:
            parsed.append(Command(pending + stripped))
            pending = ""
    return parsed


def matches(expectation: str, output: str) -> bool:
    """Whether `output` holds `expectation`'s pieces in order ("..." is anything)."""
    pieces = [piece.strip() for piece in expectation.split("...") if piece.strip()]
    pattern = ".*?".join(
        re.escape(piece).replace(re.escape(EXAMPLE_LABEL), r"\d{3}-\d{3}-\d{3}") for piece in pieces
    )
    return re.search(pattern, output, re.S) is not None


@dataclass
class Fresh:
    """A fresh `fodns serve` as `make run` starts it, in a folder of its own."""

    server: FodnsProcess
    folder: Path
    printed: Path

    def localise(self, text: str) -> str:
        """README text with this server's ports in place of 5353 and 8053."""
        return (
            text.replace("-p 5353", f"-p {self.server.dns_port}")
            .replace("127.0.0.1:5353", f"127.0.0.1:{self.server.dns_port}")
            .replace("127.0.0.1:8053", f"127.0.0.1:{self.server.api_port}")
        )

    def paste(self, block: list[Command]) -> list[tuple[Command, int, str]]:
        """Run the commands in one bash, as pasted: (command, exit status, output)."""
        script = ["exec 2>&1"]  # what a terminal shows: errors too
        for index, command in enumerate(block):
            script += [
                f"printf '\\n@@begin {index}@@\\n'",
                self.localise(command.text),
                f"printf '\\n@@end {index} %d@@\\n' $?",
            ]
        environment = {
            key: value for key, value in os.environ.items() if not key.startswith("FODNS_")
        }
        environment.pop("VIRTUAL_ENV", None)
        environment["FODNS_API"] = f"http://127.0.0.1:{self.server.api_port}"
        result = subprocess.run(
            ["bash", "-c", "\n".join(script)],
            cwd=self.folder,
            env=environment,
            capture_output=True,
            text=True,
            timeout=120,
        )
        outputs = []
        for index, command in enumerate(block):
            found = re.search(
                rf"@@begin {index}@@\n(.*?)\n@@end {index} (\d+)@@", result.stdout, re.S
            )
            assert found, f"{command.text!r} did not run:\n{result.stdout}\n{result.stderr}"
            outputs.append((command, int(found[2]), found[1]))
        return outputs


@pytest.fixture(scope="module")
def fresh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fresh]:
    folder = tmp_path_factory.mktemp("readme")
    # The walk-through's `source .venv/bin/activate` is run from the checkout.
    (folder / ".venv").symlink_to(REPOSITORY / ".venv")
    printed = folder / "printed.txt"
    environment = {key: "" for key in os.environ if key.startswith("FODNS_")}
    with printed.open("w") as out:
        server = start_fodns(
            "--dns-listen",
            "127.0.0.1:0",
            "--api-listen",
            "127.0.0.1:0",
            cwd=folder,
            env=environment,
            stdout=out,
        )
    try:
        yield Fresh(server, folder, printed)
    finally:
        assert server.stop() == 0


def test_make_run_prints_what_the_readme_shows(fresh: Fresh) -> None:
    (shown,) = marked_blocks("printed by make run")
    assert wait_for(lambda: "metrics" in fresh.printed.read_text(), 10)
    printed = (
        fresh.printed.read_text()
        .replace(f"127.0.0.1:{fresh.server.dns_port}", "127.0.0.1:5353")
        .replace(f"-p {fresh.server.dns_port}", "-p 5353")
        .replace(f"127.0.0.1:{fresh.server.api_port}", "127.0.0.1:8053")
        .replace(str(fresh.folder), README_FOLDER)
    )
    assert printed == shown


def test_every_line_make_run_prints_does_what_it_says(fresh: Fresh) -> None:
    (shown,) = marked_blocks("printed by make run")
    tried = [line.strip() for line in shown.split("Try:\n", 1)[1].splitlines()]
    block = [Command(line) for line in tried]
    for command, status, output in fresh.paste(block):
        assert status == 0, f"{command.text}: exit {status}\n{output}"
        promise = command.text.split("# ", 1)[1]
        for pattern in PROMISES[promise]:
            assert re.search(pattern, output), f"{command.text}: no {pattern!r} in\n{output}"


def test_the_walk_through_and_the_cli_block_run_as_written(fresh: Fresh) -> None:
    """Pasted one after the other into one terminal: the CLI block uses the token the
    walk-through exported."""
    blocks = marked_blocks("run")
    assert len(blocks) >= 2, "the walk-through and the CLI block are marked to be run"
    pasted = [command for block in blocks for command in commands(block)]
    for command, status, output in fresh.paste(pasted):
        assert status == command.exit_status, f"{command.text}: exit {status}\n{output}"
        for expectation in command.expected:
            assert matches(expectation, output), (
                f"{command.text}\nprinted:\n{output}\nnot what the README says:\n{expectation}"
            )
