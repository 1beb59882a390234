"""The systemd unit and example config in systemd/ are valid and keep their hardening."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
from collections import defaultdict
from pathlib import Path

import pytest

SYSTEMD_DIR = Path(__file__).resolve().parent.parent / "systemd"
UNIT_PATH = SYSTEMD_DIR / "fodns.service"
EXAMPLE_CONFIG_PATH = SYSTEMD_DIR / "fodns.toml.example"
INSTALLED_PROGRAM = "/opt/fodns/bin/fodns"
# The overall exposure `systemd-analyze security` may report, times ten
# (its --threshold= scale): 2.0 still reads "OK"; the unit scores 1.4.
MAX_EXPOSURE_TIMES_TEN = 20
# Hardening switches that must all be on; each closes off one kind of access.
REQUIRED_YES_OPTIONS = (
    "NoNewPrivileges",
    "ProtectHome",
    "PrivateTmp",
    "PrivateDevices",
    "ProtectKernelTunables",
    "ProtectKernelModules",
    "ProtectKernelLogs",
    "ProtectControlGroups",
    "ProtectClock",
    "ProtectHostname",
    "RestrictNamespaces",
    "RestrictRealtime",
    "RestrictSUIDSGID",
    "LockPersonality",
    "MemoryDenyWriteExecute",
)

UnitSettings = dict[str, dict[str, list[str]]]


def parse_unit(text: str) -> UnitSettings:
    """Map section -> key -> every value assigned, in order (keys may repeat)."""
    settings: UnitSettings = defaultdict(lambda: defaultdict(list))
    section = ""
    logical_lines: list[str] = []
    pending = ""
    for raw_line in text.splitlines():
        stripped = raw_line.strip()
        if not pending and (not stripped or stripped[0] in "#;"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1].rstrip() + " "
            continue
        logical_lines.append(pending + stripped)
        pending = ""
    for line in logical_lines:
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
            continue
        key, separator, value = line.partition("=")
        assert separator, f"not a key=value line: {line!r}"
        settings[section][key.strip()].append(value.strip())
    return settings


def unit_settings() -> UnitSettings:
    return parse_unit(UNIT_PATH.read_text(encoding="utf-8"))


def last_value(settings: UnitSettings, section: str, key: str) -> str:
    values = settings[section][key]
    assert values, f"[{section}] {key}= is not set"
    return values[-1]


def require_systemd_analyze() -> str:
    """The verifier; on Linux, where the unit is meant to run, its absence is a broken test
    host and fails (as the dashboard tests fail without Chromium); elsewhere it skips."""
    executable = shutil.which("systemd-analyze")
    if executable is None:
        missing = "systemd-analyze is not installed (Debian package: systemd)"
        if sys.platform.startswith("linux"):
            pytest.fail(f"{missing}: the unit cannot be verified without it")
        pytest.skip(missing)
    return executable


def verify_unit(unit_text: str, directory: Path) -> tuple[int, list[str]]:
    """Run `systemd-analyze verify` on unit_text saved as fodns.service.

    Returns the exit status and the diagnostics that concern this unit; lines
    about other units the verifier happens to load are not ours to judge.
    """
    unit_copy = directory / "fodns.service"
    unit_copy.write_text(unit_text, encoding="utf-8")
    completed = subprocess.run(
        [require_systemd_analyze(), "verify", str(unit_copy)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=directory,
        check=False,
    )
    diagnostics = (completed.stderr + completed.stdout).splitlines()
    about_this_unit = [line for line in diagnostics if "fodns.service" in line]
    return completed.returncode, about_this_unit


def with_runnable_exec_start(unit_text: str) -> str:
    """Point ExecStart at an existing program: verify rejects missing binaries.

    Only the program path changes; the arguments and every other line are
    verified as written.
    """
    rewritten, replacements = re.subn(
        rf"^ExecStart={re.escape(INSTALLED_PROGRAM)}(?= )",
        f"ExecStart={sys.executable}",
        unit_text,
        flags=re.MULTILINE,
    )
    assert replacements == 1, f"expected one ExecStart={INSTALLED_PROGRAM} line"
    return rewritten


def test_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    unit_text = with_runnable_exec_start(UNIT_PATH.read_text(encoding="utf-8"))
    returncode, problems = verify_unit(unit_text, tmp_path)
    assert problems == []
    assert returncode == 0


def test_verify_check_reports_unknown_and_invalid_settings(tmp_path: Path) -> None:
    """Guards the check above: a misspelt key or bad value must not slip through."""
    unit_text = with_runnable_exec_start(UNIT_PATH.read_text(encoding="utf-8"))
    broken_text = unit_text.replace(
        "ProtectSystem=strict", "ProtectSystem=stritc\nProtectKernelTunable=yes"
    )
    assert broken_text != unit_text
    _, problems = verify_unit(broken_text, tmp_path)
    assert any("ProtectKernelTunable" in line for line in problems), problems
    assert any("stritc" in line for line in problems), problems


def test_unit_sets_security_critical_options() -> None:
    settings = unit_settings()
    service = settings["Service"]

    runs_unprivileged = service["DynamicUser"] == ["yes"] or (
        bool(service["User"]) and service["User"][-1] not in {"root", "0"}
    )
    assert runs_unprivileged, "needs DynamicUser=yes or a non-root User="
    assert service["AmbientCapabilities"] == ["CAP_NET_BIND_SERVICE"]
    assert service["CapabilityBoundingSet"] == ["CAP_NET_BIND_SERVICE"]
    switched_off = [
        option
        for option in REQUIRED_YES_OPTIONS
        if not service[option] or service[option][-1] != "yes"
    ]
    assert switched_off == []
    assert last_value(settings, "Service", "ProtectSystem") == "strict"
    assert last_value(settings, "Service", "ProtectProc") == "invisible"
    assert last_value(settings, "Service", "SystemCallArchitectures") == "native"
    assert last_value(settings, "Service", "StateDirectory") == "fodns"
    assert last_value(settings, "Service", "StateDirectoryMode") == "0700"
    assert last_value(settings, "Service", "UMask") == "0077"
    assert set(last_value(settings, "Service", "RestrictAddressFamilies").split()) == {
        "AF_INET",
        "AF_INET6",
        "AF_UNIX",
    }
    assert service["SystemCallFilter"][0] == "@system-service"
    denied_groups = {
        group.removeprefix("~")
        for value in service["SystemCallFilter"][1:]
        if value.startswith("~")
        for group in value.removeprefix("~").split()
    }
    assert {"@privileged", "@resources"} <= denied_groups

    reload_command = last_value(settings, "Service", "ExecReload").split()
    assert reload_command[:2] == ["/bin/kill", "-HUP"]
    assert reload_command[2] in {"$MAINPID", "${MAINPID}"}
    assert last_value(settings, "Service", "Restart") == "on-failure"
    assert last_value(settings, "Service", "ExecStart").startswith(f"{INSTALLED_PROGRAM} serve ")
    assert "multi-user.target" in last_value(settings, "Install", "WantedBy").split()


def test_unit_parser_sees_repeated_and_commented_lines() -> None:
    parsed = parse_unit(
        "[Service]\n# ProtectSystem=no\nSystemCallFilter=@system-service\n"
        "SystemCallFilter=~@privileged \\\n  @resources\n"
    )
    assert parsed["Service"]["SystemCallFilter"] == ["@system-service", "~@privileged @resources"]
    assert parsed["Service"]["ProtectSystem"] == []


def test_unit_security_exposure_stays_low(tmp_path: Path) -> None:
    systemd_analyze = require_systemd_analyze()
    usage = subprocess.run(
        [systemd_analyze, "--help"], capture_output=True, text=True, timeout=60, check=False
    ).stdout
    # Debian 12 ships v252; an older one cannot score the unit, and must not pass quietly.
    assert "--offline" in usage, (
        "this systemd-analyze cannot assess a unit file offline (needs systemd v250+)"
    )
    unit_copy = tmp_path / "fodns.service"
    shutil.copyfile(UNIT_PATH, unit_copy)
    completed = subprocess.run(
        [
            systemd_analyze,
            "security",
            "--offline=yes",
            f"--threshold={MAX_EXPOSURE_TIMES_TEN}",
            "--no-pager",
            str(unit_copy),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    summary = re.search(r"Overall exposure level for fodns\.service: ([\d.]+)", completed.stdout)
    assert summary is not None, completed.stdout + completed.stderr
    assert float(summary.group(1)) <= MAX_EXPOSURE_TIMES_TEN / 10
    assert completed.returncode == 0, completed.stderr


def test_example_config_matches_the_host_layout() -> None:
    config = tomllib.loads(EXAMPLE_CONFIG_PATH.read_text(encoding="utf-8"))
    assert set(config["dns"]["listen"]) == {"0.0.0.0:53", "[::]:53"}
    assert config["dns"]["workers"] == 2
    assert config["api"]["listen"] == "127.0.0.1:8053"
    assert "token" not in config["api"], "the config is world-readable under DynamicUser="
    assert config["store"]["path"] == "/var/lib/fodns/fodns.db"
    assert config["zones"] == [
        {
            "name": "fo.example.net",
            "file": "/etc/fodns/zones/fo.example.net.zone",
            "group_ttl": 30,
        }
    ]


def test_example_config_is_accepted_by_fodns() -> None:
    """fodns rejects unknown keys and bad values, so this catches drift from its schema."""
    from fodns.config import load_config

    config = load_config(EXAMPLE_CONFIG_PATH)
    assert sorted(str(address) for address in config.dns.listen) == ["0.0.0.0:53", "[::]:53"]
    assert config.dns.workers == 2
    assert str(config.api.listen) == "127.0.0.1:8053"
    assert config.api.token is None
    assert config.store_path == Path("/var/lib/fodns/fodns.db")
    assert [(zone.name, zone.file, zone.group_ttl) for zone in config.zones] == [
        ("fo.example.net", Path("/etc/fodns/zones/fo.example.net.zone"), 30)
    ]


def test_example_config_paths_fall_inside_the_units_directories() -> None:
    """The store must be writable and the config readable under ProtectSystem=strict."""
    settings = unit_settings()
    config = tomllib.loads(EXAMPLE_CONFIG_PATH.read_text(encoding="utf-8"))
    state_directory = Path("/var/lib") / last_value(settings, "Service", "StateDirectory")
    configuration_directory = Path("/etc") / last_value(
        settings, "Service", "ConfigurationDirectory"
    )

    assert Path(config["store"]["path"]).parent == state_directory
    for zone in config["zones"]:
        assert Path(zone["file"]).is_relative_to(configuration_directory)
    exec_start = last_value(settings, "Service", "ExecStart").split()
    config_argument = Path(exec_start[exec_start.index("--config") + 1])
    assert config_argument.is_relative_to(configuration_directory)


def commented_credentials(unit_text: str) -> dict[str, str]:
    """The unit's example LoadCredential= lines (commented out): name -> source file."""
    credentials = {}
    for line in unit_text.splitlines():
        if line.startswith("#LoadCredential="):
            name, _, source = line.removeprefix("#LoadCredential=").partition(":")
            credentials[name] = source
    return credentials


def test_unit_credential_examples_pass_systemd_analyze_verify(tmp_path: Path) -> None:
    unit_text = with_runnable_exec_start(UNIT_PATH.read_text(encoding="utf-8"))
    credentials = commented_credentials(unit_text)
    assert set(credentials) == {"admin-token", "tsig-xfr"}
    for source in credentials.values():
        # Root-only files in the configuration directory, read by systemd as root.
        assert Path(source).parent == Path("/etc/fodns"), source
    uncommented = unit_text.replace("#LoadCredential=", "LoadCredential=")
    returncode, problems = verify_unit(uncommented, tmp_path)
    assert problems == []
    assert returncode == 0


def test_example_config_tsig_block_reads_the_units_credential(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Uncommented, the example's transfer block loads, its TSIG secret and the admin
    token coming from the credentials the unit's example LoadCredential= lines pass
    (as systemd would lay them out in $CREDENTIALS_DIRECTORY)."""
    from fodns.config import admin_token_credential, load_config

    secret = "c2VjcmV0LXNoYXJlZC13aXRoLXRoZS1zZWNvbmRhcnk="
    credentials_directory = tmp_path / "credentials"
    credentials_directory.mkdir()
    names = commented_credentials(UNIT_PATH.read_text(encoding="utf-8"))
    (credentials_directory / "tsig-xfr").write_text(secret + "\n")
    (credentials_directory / "admin-token").write_text("admin-token-from-a-credential\n")
    assert set(names) == {p.name for p in credentials_directory.iterdir()}
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(credentials_directory))

    example = EXAMPLE_CONFIG_PATH.read_text(encoding="utf-8")
    uncommented = re.sub(
        r"^# ((allow_transfer|notify|algorithm|credential) = |\[tsig\.)",
        r"\1",
        example,
        flags=re.MULTILINE,
    )
    assert uncommented.count("\n# ") < example.count("\n# ")
    config_file = tmp_path / "fodns.toml"
    config_file.write_text(uncommented)
    config = load_config(config_file)
    assert config.tsig["xfr"].secret == secret
    assert [peer.key for peer in config.zones[0].allow_transfer] == ["xfr"]
    assert [target.key for target in config.zones[0].notify] == ["xfr"]
    assert tomllib.loads(uncommented)["tsig"] == {
        "xfr": {"algorithm": "hmac-sha256", "credential": "tsig-xfr"}
    }, "no secret in the world-readable config"
    assert admin_token_credential() == "admin-token-from-a-credential"
