"""Secrets kept out of the config file, which the systemd unit needs world-readable: a
TSIG secret from a file of its own or from a systemd credential (LoadCredential=, read
from $CREDENTIALS_DIRECTORY), the admin token from the credential `admin-token`, and a
clear start-up error, naming the key and the file, for every way that can go wrong."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import dns.query
import dns.zone
import pytest

from tests.support import (
    EXAMPLE_ZONE,
    REPOSITORY,
    FodnsProcess,
    api_request,
    start_fodns,
    write_config,
)
from tests.test_transfer import KEYRING, SECRET

ALLOW_XFR = 'allow_transfer = [{ address = "127.0.0.1/32", key = "xfr" }]\n'


def config_with_key(directory: Path, key_table: str) -> Path:
    """A config whose zone may be transferred with key xfr, defined by `key_table`."""
    return write_config(
        directory,
        [("fo.example.net", EXAMPLE_ZONE)],
        zone_extra=ALLOW_XFR,
        extra=f'[tsig.xfr]\nalgorithm = "hmac-sha256"\n{key_table}',
    )


def secret_file(path: Path, text: str) -> Path:
    """A root-only file, as an operator keeps a secret."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(0o600)
    return path


def pull(server: FodnsProcess) -> dns.zone.Zone:
    return dns.zone.from_xfr(
        dns.query.xfr(
            "127.0.0.1",
            "fo.example.net",
            port=server.dns_port,
            keyring=KEYRING,
            keyname="xfr.",
            timeout=5,
        )
    )


def test_a_tsig_secret_from_a_file_relative_to_the_config(tmp_path: Path) -> None:
    secret_file(tmp_path / "keys" / "xfr.key", f"\n  {SECRET}  \n")  # whitespace is ignored
    config = config_with_key(tmp_path, 'secret_file = "keys/xfr.key"\n')
    assert SECRET not in config.read_text()
    running = start_fodns(
        "--config", str(config), env={"FODNS_ADMIN_TOKEN": "credentials-test-token"}
    )
    try:
        assert pull(running).find_rdataset("www", "A")
    finally:
        assert running.stop() == 0


@pytest.mark.parametrize("workers", [1, 2])
def test_a_tsig_secret_from_a_systemd_credential(tmp_path: Path, workers: int) -> None:
    """What LoadCredential=tsig-xfr:/etc/fodns/tsig-xfr.key sets up: the file in a
    directory named by $CREDENTIALS_DIRECTORY."""
    credentials = tmp_path / "credentials"
    secret_file(credentials / "tsig-xfr", SECRET + "\n")
    config = write_config(
        tmp_path,
        [("fo.example.net", EXAMPLE_ZONE)],
        dns_extra=f"workers = {workers}\n",
        zone_extra=ALLOW_XFR,
        extra='[tsig.xfr]\nalgorithm = "hmac-sha256"\ncredential = "tsig-xfr"\n',
    )
    running = start_fodns(
        "--config",
        str(config),
        env={
            "FODNS_ADMIN_TOKEN": "credentials-test-token",
            "CREDENTIALS_DIRECTORY": str(credentials),
        },
    )
    try:
        assert pull(running).find_rdataset("www", "A")
    finally:
        assert running.stop() == 0


def test_the_admin_token_from_a_systemd_credential(tmp_path: Path) -> None:
    """LoadCredential=admin-token:/etc/fodns/admin-token: no token in the config or the
    environment, none generated, and the credential's token is the one that works. It
    comes before FODNS_ADMIN_TOKEN, which a unit may still carry from an older setup."""
    credentials = tmp_path / "credentials"
    secret_file(credentials / "admin-token", "token-from-the-credential\n")
    config = write_config(tmp_path, [("fo.example.net", EXAMPLE_ZONE)])
    running = start_fodns(
        "--config",
        str(config),
        env={
            "CREDENTIALS_DIRECTORY": str(credentials),
            "FODNS_ADMIN_TOKEN": "older-token-from-env",
        },
    )
    try:
        assert api_request(running, "GET", "/v1/apps", token="token-from-the-credential")[0] == 200
        assert api_request(running, "GET", "/v1/apps", token="older-token-from-env")[0] == 401
        assert not (tmp_path / "admin-token").exists(), "no token should have been generated"
    finally:
        assert running.stop() == 0


def run_serve(config: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`fodns serve` expected to stop on its own with a start-up error."""
    return subprocess.run(
        [sys.executable, "-m", "fodns", "serve", "--config", str(config)],
        cwd=REPOSITORY,
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, "FODNS_ADMIN_TOKEN": "credentials-test-token", **(env or {})},
    )


@pytest.mark.parametrize(
    ("key_table", "files", "expected"),
    [
        (
            f'secret = "{SECRET}"\nsecret_file = "xfr.key"\n',
            {"xfr.key": SECRET},
            "tsig.xfr: needs exactly one of secret, secret_file, credential"
            " (it has secret and secret_file)",
        ),
        ("", {}, "tsig.xfr: needs exactly one of secret, secret_file, credential"),
        (
            'secret_file = "absent.key"\n',
            {},
            "tsig.xfr.secret_file: {dir}/absent.key: no such file",
        ),
        (
            'secret_file = "xfr.key"\n',
            {"xfr.key": " \n"},
            "tsig.xfr.secret_file: {dir}/xfr.key: is empty",
        ),
        (
            'secret_file = "xfr.key"\n',
            {"xfr.key": "not base64!\n"},
            "tsig.xfr.secret_file: {dir}/xfr.key: is not base64",
        ),
        ('secret_file = "."\n', {}, "tsig.xfr.secret_file: {dir}: cannot read: Is a directory"),
        ('secret = "not base64!"\n', {}, "tsig.xfr.secret: is not base64"),
        ('secrt = "c2VjcmV0"\n', {}, "tsig.xfr.secrt: unknown key"),
        (
            'credential = "tsig-xfr"\n',
            {},
            "tsig.xfr.credential: $CREDENTIALS_DIRECTORY is not set: run under systemd with"
            " LoadCredential=tsig-xfr:/path/to/file",
        ),
        (
            'credential = "../xfr.key"\n',
            {},
            "tsig.xfr.credential: '../xfr.key' is not a credential",
        ),
    ],
)
def test_a_tsig_secret_that_cannot_be_had_stops_start_up_naming_key_and_file(
    tmp_path: Path, key_table: str, files: dict[str, str], expected: str
) -> None:
    for name, text in files.items():
        secret_file(tmp_path / name, text)
    config = config_with_key(tmp_path, key_table)
    result = run_serve(config)
    assert result.returncode == 2, result.stderr
    assert f"fodns: error: {config}: " in result.stderr
    assert expected.format(dir=tmp_path) in result.stderr


def test_a_credential_missing_from_the_credentials_directory_is_named(tmp_path: Path) -> None:
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    config = config_with_key(tmp_path, 'credential = "tsig-xfr"\n')
    result = run_serve(config, {"CREDENTIALS_DIRECTORY": str(credentials)})
    assert result.returncode == 2, result.stderr
    assert f"tsig.xfr.credential: {credentials}/tsig-xfr: no such file" in result.stderr


def test_an_empty_admin_token_credential_stops_start_up(tmp_path: Path) -> None:
    credentials = tmp_path / "credentials"
    secret_file(credentials / "admin-token", "\n")
    config = write_config(tmp_path, [("fo.example.net", EXAMPLE_ZONE)])
    result = run_serve(config, {"CREDENTIALS_DIRECTORY": str(credentials)})
    assert result.returncode == 2, result.stderr
    assert f"credential admin-token: {credentials}/admin-token: is empty" in result.stderr
