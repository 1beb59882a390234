"""Log lines stay whole when several processes (the DNS workers) share one stderr."""

from __future__ import annotations

import json
import os
import subprocess
import sys

# The child forks, so two processes log through fodns.logs into the same pipe.
TWO_PROCESSES_LOGGING = """
import os
from fodns.logs import configure_logging, get_logger
os.fork()
configure_logging()
log = get_logger()
for n in range(3000):
    log.info("line_written", n=n, padding="x" * 200)
"""


def test_concurrent_writers_never_split_a_json_line() -> None:
    result = subprocess.run(
        [sys.executable, "-c", TWO_PROCESSES_LOGGING],
        capture_output=True,
        text=True,
        timeout=60,
        # Unbuffered, as under systemd or the tests: the case where a line written
        # in two parts can interleave with another process's line.
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    lines = result.stderr.splitlines()
    assert len(lines) == 6000
    events = [json.loads(line) for line in lines]
    assert {event["event"] for event in events} == {"line_written"}
