"""Fixtures that run the real `fodns serve` on loopback ports the OS picks (the helpers
they are built on are in tests/support, which test modules import directly)."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.route53_rig import Rig, route53_rig
from tests.support import (
    WIRE_ZONES,
    Fleet,
    FodnsProcess,
    serving,
    start_fodns,
    start_with_config,
    write_config,
)

# Both deployment modes: the API process answering DNS itself, and the shipped
# example's two DNS worker processes fed by the API process.
WORKER_MODES = [pytest.param(1, id="workers1"), pytest.param(2, id="workers2")]

# The files that take longest (seconds of one test process in a full run on two busy
# cores, 2026-12-03: the dashboard 265, groups 188, transfers 126 ... the wheel 33),
# handed out first. pytest-xdist gives each test process whole files (--dist loadfile)
# in collection order (--no-loadscope-reorder; its default order, most tests first,
# left files of three long tests such as the backup guide's for last), so a long file
# started last would keep the whole run waiting for it. The rest follow in their order.
LONGEST_FILES_FIRST = (
    "test_dashboard.py",
    "test_groups_api.py",
    "test_transfer.py",
    "test_hardening.py",
    "test_cli_client.py",
    "test_route53.py",
    "test_route53_faults.py",
    "test_autofailover.py",
    "test_startup.py",
    "test_workers.py",
    "test_rrl.py",
    "test_contract.py",
    "test_webhooks.py",
    "test_secondaries.py",
    "test_route53_ownership.py",
    "test_feed.py",
    "test_tcp_limits.py",
    "test_tcp.py",
    "test_route53_robust.py",
    "test_backup.py",
    "test_route53_emulator.py",
    "test_wheel_install.py",
    "test_benchmarks.py",
    "test_readme.py",
    "test_acme_e2e.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The longest files first (LONGEST_FILES_FIRST); a stable sort, so each file's
    tests keep their order and the other files theirs."""
    rank = {name: place for place, name in enumerate(LONGEST_FILES_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))


@pytest.fixture(params=WORKER_MODES)
def workers(request: pytest.FixtureRequest) -> int:
    """Parametrises a test over both modes: every rule must hold in each."""
    return int(request.param)


StartFodns = Callable[..., FodnsProcess]


@pytest.fixture(scope="module")
def fleet(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Fleet]:
    """The test module's shared fodns servers, one per worker count, each started the
    first time a test asks for it, with the module's `TOKEN` as admin token and its
    `FLEET_CONFIG` (if it has one) added to the config; all stopped when the module
    is done, and each must then shut down cleanly. For tests that only refuse input
    or use names no other test of the module uses: starting fodns is most of what
    the suite spends its CPU on."""
    module = request.module
    name = module.__name__.rpartition(".")[2]
    started = Fleet(
        tmp_path_factory.mktemp(name), module.TOKEN, getattr(module, "FLEET_CONFIG", "")
    )
    try:
        yield started
    finally:  # every server is stopped, whatever happened in the tests
        started.stop()


@pytest.fixture
def shared_server(fleet: Fleet, workers: int) -> FodnsProcess:
    """The module's shared fodns with `workers` DNS workers (see `fleet`)."""
    return fleet.get(workers)


@pytest.fixture
def fodns_factory(tmp_path: Path) -> Iterator[StartFodns]:
    """Start fodns with `start_with_config`'s arguments (directory defaults to a fresh
    folder under tmp_path); each one started is stopped afterwards even when the test
    failed, and must then have shut down cleanly (or died by the test's own `kill()`)."""
    started: list[FodnsProcess] = []

    def start(token: str, directory: Path | None = None, **options: object) -> FodnsProcess:
        folder = directory or tmp_path / f"fodns{len(started)}"
        folder.mkdir(parents=True, exist_ok=True)
        running = start_with_config(folder, token, **options)  # type: ignore[arg-type]
        started.append(running)
        return running

    yield start
    exits = [running.stop() for running in started]
    expected = [-signal.SIGKILL if running.killed else 0 for running in started]
    assert exits == expected, f"fodns did not shut down cleanly: {exits}, expected {expected}"


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    """A Route53 emulator (moto_server behind a recording proxy) and the means to start
    fodns mirroring into it; everything it started is stopped afterwards."""
    with route53_rig(tmp_path) as running:
        yield running


@pytest.fixture
def umask_022() -> Iterator[None]:
    """The usual login umask, under which new files are readable by everyone: what fodns
    creates must be private anyway (outside systemd there is no UMask=0077)."""
    previous = os.umask(0o022)
    yield
    os.umask(previous)


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FodnsProcess]:
    """One fodns serving the example zone and the test zones, shared by the wire tests."""
    directory = tmp_path_factory.mktemp("server")
    with serving(start_fodns("--config", str(write_config(directory, WIRE_ZONES)))) as running:
        yield running
