"""fodns built as a wheel and installed into a fresh venv, as systemd/README.md installs
it (`pip install .`, not editable), serves everything a deployment needs from the venv
alone: the example zone, the admin API and the dashboard, run from outside the checkout.

The venv gets the wheel with `--no-deps`, and a .pth file lends it the directories this
test run's dependencies are installed in. fodns's own code and files can then only come
from the wheel, which is the point; downloading aiohttp and boto3 again would only test
pip and the network, take longer and fail offline.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from importlib.metadata import distribution, requires
from pathlib import Path

import dns.message
import dns.rcode
import dns.rdatatype
import pytest
from packaging.requirements import Requirement

from tests.support import REPOSITORY, FodnsProcess, api_request, ask_every_worker, start_fodns

DASHBOARD_FILES = sorted(
    path.name for path in (REPOSITORY / "admin").iterdir() if path.suffix != ".md"
)
# A browser runs a module script only with a JavaScript type (either name will do).
CONTENT_TYPES = {
    ".html": {"text/html"},
    ".js": {"text/javascript", "application/javascript"},
    ".css": {"text/css"},
}
SYSTEMD_CONFIG = REPOSITORY / "systemd" / "fodns.toml.example"
# What a clone holds that a wheel is not built from (and, in .venv, is large).
NOT_COPIED = shutil.ignore_patterns(
    ".git", ".venv", "build", "*.egg-info", "__pycache__", ".*_cache", "var", "test-artifacts"
)
TOKEN = "wheel-install-test-token"


@dataclass(frozen=True)
class Installed:
    """A venv holding fodns from a wheel, and a working directory outside the checkout."""

    venv: Path
    site_packages: Path
    workdir: Path

    @property
    def program(self) -> Path:
        return self.venv / "bin" / "fodns"

    def python(self, code: str) -> str:
        return run([str(self.venv / "bin" / "python"), "-c", code], cwd=self.workdir)


def run(command: list[str], cwd: Path) -> str:
    # An empty PYTHONPATH is ignored by Python: nothing from the caller's can leak in.
    result = subprocess.run(
        command,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": ""},
    )
    assert result.returncode == 0, f"{command} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def dependency_directories() -> list[str]:
    """Where this run's copies of fodns's runtime dependencies are installed."""
    directories: list[str] = []
    for line in requires("fodns") or []:
        requirement = Requirement(line)
        if requirement.marker and not requirement.marker.evaluate({"extra": ""}):
            continue
        directory = str(distribution(requirement.name).locate_file(""))
        if directory not in directories:
            directories.append(directory)
    return directories


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installed]:
    root = tmp_path_factory.mktemp("wheel-install")
    # Built from a copy, as from a fresh clone: setuptools builds in the source tree,
    # and a stale build/ in the checkout could put files in the wheel that git lacks.
    source = root / "source"
    shutil.copytree(REPOSITORY, source, symlinks=True, ignore=NOT_COPIED)
    wheels = root / "wheels"
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheels), "."], source)
    (wheel,) = wheels.glob("fodns-*.whl")
    venv = root / "venv"
    run([sys.executable, "-m", "venv", "--without-pip", str(venv)], root)
    purelib = run(
        [
            str(venv / "bin" / "python"),
            "-c",
            "import sysconfig; print(sysconfig.get_path('purelib'))",
        ],
        root,
    )
    site_packages = Path(purelib.strip())
    (site_packages / "test-dependencies.pth").write_text("\n".join(dependency_directories()))
    run(
        [sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install",
         "--no-deps", "--no-index", "-q", str(wheel)],
        root,
    )  # fmt: skip
    shutil.rmtree(source)  # nothing may still need the tree it was built from
    workdir = root / "elsewhere"
    workdir.mkdir()
    yield Installed(venv, site_packages, workdir)


def test_fodns_is_imported_from_the_venv_with_nothing_pointing_into_the_checkout(
    installed: Installed,
) -> None:
    report = json.loads(
        installed.python(
            "import json, fodns, fodns.api, fodns.config, importlib.metadata as m\n"
            "d = m.distribution('fodns')\n"
            "print(json.dumps({'module': fodns.__file__,"
            " 'dashboard': str(fodns.api.DASHBOARD),"
            " 'example_zone': str(fodns.config.EXAMPLE_ZONE_FILE),"
            " 'files': [str(d.locate_file(f)) for f in d.files or []]}))"
        )
    )
    for used in ("module", "dashboard", "example_zone"):
        assert Path(report[used]).is_relative_to(installed.site_packages), report[used]
    files = [Path(name).resolve() for name in report["files"]]
    for path in files:
        assert path.is_relative_to(installed.venv.resolve()), path
        assert str(REPOSITORY) not in path.read_text(errors="replace"), path
    package = installed.site_packages.resolve() / "fodns"
    shipped = {
        path.relative_to(package).as_posix() for path in files if path.is_relative_to(package)
    }
    assert {f"admin/{name}" for name in DASHBOARD_FILES} <= shipped
    assert "zones/fo.example.net.zone" in shipped


def test_version(installed: Installed) -> None:
    expected = distribution("fodns").version
    output = run([str(installed.program), "--version"], installed.workdir)
    assert output.strip() == f"fodns {expected}"


@pytest.fixture(scope="module")
def served(
    installed: Installed, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[FodnsProcess]:
    """The installed `fodns serve` with no --config, run from outside the checkout."""
    state = tmp_path_factory.mktemp("state")
    running = start_fodns(
        "--dns-listen", "127.0.0.1:0", "--api-listen", "127.0.0.1:0",
        "--db", str(state / "fodns.db"),
        cwd=installed.workdir,
        env={"FODNS_ADMIN_TOKEN": TOKEN, "PYTHONPATH": ""},
        program=[str(installed.program)],
    )  # fmt: skip
    yield running
    assert running.stop() == 0, "the installed fodns did not shut down cleanly"


def test_with_no_config_it_serves_the_example_zone(served: FodnsProcess) -> None:
    response = served.udp(dns.message.make_query("www.fo.example.net", "A"))
    assert response.rcode() == dns.rcode.NOERROR
    (answer,) = response.answer
    assert sorted(rdata.to_text() for rdata in answer) == ["192.0.2.10", "192.0.2.11"]


def test_health_and_the_api_answer(served: FodnsProcess) -> None:
    assert served.http_get("/healthz")[0] == 200
    status, document = api_request(served, "GET", "/v1/openapi.json", token=TOKEN)
    assert status == 200 and document["openapi"].startswith("3.")
    status, listing = api_request(served, "GET", "/v1/zones", token=TOKEN)
    assert status == 200 and [zone["name"] for zone in listing["zones"]] == ["fo.example.net"]


@pytest.mark.parametrize("name", ["/", *(f"/admin/{name}" for name in DASHBOARD_FILES)])
def test_the_dashboard_is_served_whole(served: FodnsProcess, name: str) -> None:
    """Every file of admin/, byte for byte, with the type a browser needs to run it."""
    source = REPOSITORY / "admin" / ("index.html" if name == "/" else name.rpartition("/")[2])
    url = f"http://127.0.0.1:{served.api_port}{name}"
    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.status == 200
        content_type = response.headers.get_content_type()
        body = response.read()
    assert content_type in CONTENT_TYPES[source.suffix]
    assert body == source.read_bytes()


def test_it_serves_the_systemd_example_config(installed: Installed, tmp_path: Path) -> None:
    """systemd/fodns.toml.example as systemd/README.md installs it (two DNS workers, which
    start as fresh Python processes and must find fodns in the venv too), with its zone
    file, addresses and database moved to places a test may use."""
    zones = tmp_path / "zones"
    zones.mkdir()
    shutil.copy(REPOSITORY / "zones" / "fo.example.net.zone", zones)
    text = SYSTEMD_CONFIG.read_text()
    assert text.count('"/etc/fodns/zones/') == 1
    config = tmp_path / "fodns.toml"
    config.write_text(text.replace('"/etc/fodns/zones/', f'"{zones}/'))
    running = start_fodns(
        "--config", str(config), "--dns-listen", "127.0.0.1:0", "--api-listen", "127.0.0.1:0",
        "--db", str(tmp_path / "fodns.db"),
        cwd=installed.workdir,
        env={"FODNS_ADMIN_TOKEN": TOKEN, "PYTHONPATH": ""},
        program=[str(installed.program)],
    )  # fmt: skip
    try:
        assert running.http_get("/healthz")[0] == 200
        query = dns.message.make_query("mail.fo.example.net", "A")
        for response in ask_every_worker(running, query):  # both workers answer
            assert [rrset.to_text() for rrset in response.answer] == [
                "mail.fo.example.net. 3600 IN A 192.0.2.25"
            ]
    finally:
        assert running.stop() == 0
