"""The dashboard with many groups, in a real headless Chromium against a real fodns.

    .venv/bin/python benchmarks/dashboard.py [--groups 100000] [--apps 10000] [--runs 3]

For each run: a store with the apps and groups written straight into SQLite (as in
benchmarks/groups.py), `fodns serve` with one worker, then in Chromium:

1. sign-in: from clicking "Sign in" to the first group row drawn, with the requests
   and bytes of that first load (until the network is idle);
2. find: from typing a label into "Find groups" to that one row drawn;
3. follow: a switch made through the API (not the page), until the page shows it
   (polling every 2 s, so 0-2 s of it is waiting), with the requests and bytes the
   page fetched to follow it.

Everything binds 127.0.0.1 on ports the OS picks; each wait is bounded.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from groups import TOKEN, Server, fill_store, write_config, write_results
from playwright.sync_api import Page, Request, expect, sync_playwright
from provenance import print_report, provenance


def one_run(apps: int, groups: int, chromium: str) -> dict[str, object]:
    with tempfile.TemporaryDirectory(prefix="fodns-dashboard-") as temporary:
        directory = Path(temporary)
        fill_store(directory, apps, groups)
        server = Server(write_config(directory, 1))
        try:
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(
                    executable_path=chromium, args=["--no-sandbox"]
                )
                try:
                    return measure(browser.new_page(), server)
                finally:
                    browser.close()
        finally:
            server.stop()


def api_recorder(into: list[tuple[str, int]]) -> Callable[[Request], None]:
    """A requestfinished listener keeping (path after /v1/, response body bytes) of each
    API request; the sizes come from the network layer, as a 25 MB body may already be
    gone from the inspector's cache when read back."""

    def record(request: Request) -> None:
        if "/v1/" in request.url:
            into.append((request.url.split("/v1/", 1)[1], request.sizes()["responseBodySize"]))

    return record


def measure(page: Page, server: Server) -> dict[str, object]:
    page.goto(f"http://127.0.0.1:{server.api_port}/")
    page.get_by_label("Admin token").fill(TOKEN)
    first_load: list[tuple[str, int]] = []
    record_first_load = api_recorder(first_load)
    page.on("requestfinished", record_first_load)
    started = time.monotonic()
    page.get_by_role("button", name="Sign in").click()
    page.locator("tr[data-group]").first.wait_for(timeout=120_000)
    sign_in = time.monotonic() - started
    page.wait_for_load_state("networkidle")  # every request of the first load answered
    page.remove_listener("requestfinished", record_first_load)

    label = "000-000-001"
    row = page.locator(f'tr[data-group="{label}.fo.example.net"]')
    started = time.monotonic()
    page.get_by_role("searchbox", name="Find groups").fill(label)
    expect(page.locator("tr[data-group]")).to_have_count(1, timeout=60_000)
    expect(row).to_be_visible()
    find = time.monotonic() - started

    to = "primary" if row.locator("input[value=backup]").is_checked() else "backup"
    fetched: list[tuple[str, int]] = []
    record = api_recorder(fetched)
    page.wait_for_timeout(300)  # let any poll in flight finish before counting
    page.on("requestfinished", record)
    started = time.monotonic()
    server.api("POST", f"/v1/groups/{label}/switch", {"to": to})
    expect(row.locator(f"input[value={to}]")).to_be_checked(timeout=30_000)
    follow = time.monotonic() - started
    page.wait_for_timeout(300)
    page.remove_listener("requestfinished", record)
    return {
        "sign_in_to_first_row_s": round(sign_in, 2),
        "first_load_requests": len(first_load),
        "first_load_bytes": sum(size for _, size in first_load),
        "first_load_fetched": [path for path, _ in first_load],
        "find_one_group_s": round(find, 2),
        "follow_a_switch_made_elsewhere_s": round(follow, 2),
        "follow_requests": len(fetched),
        "follow_bytes": sum(size for _, size in fetched),
        "follow_fetched": [path for path, _ in fetched],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--groups", type=int, default=100_000)
    parser.add_argument("--apps", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args(argv)
    chromium = shutil.which("chromium")
    if chromium is None:
        print("chromium is not installed: make deps-debian", file=sys.stderr)
        return 2
    version = subprocess.run([chromium, "--version"], capture_output=True, text=True)
    record = provenance(
        "none: absolute times of this run, with "
        + (version.stdout.strip() or "Debian's chromium")
        + "; no other commit or page is measured beside it",
        argv,
        __file__,
    )
    print_report(record, file=sys.stderr)
    runs = [one_run(args.apps, args.groups, chromium) for _ in range(args.runs)]
    numbers = [key for key, value in runs[0].items() if isinstance(value, (int, float))]
    results = {
        "provenance": record,
        "groups": args.groups,
        "apps": args.apps,
        "runs": runs,
        "median": {key: statistics.median(float(str(run[key])) for run in runs) for key in numbers},
    }
    write_results("dashboard", results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
