"""Secrets kept out of the config file, which the systemd unit needs world-readable: a
TSIG secret from a file of its own or from a systemd credential (LoadCredential=, read
from $CREDENTIALS_DIRECTORY), the admin token from the credential `admin-token`, and a
clear start-up error, naming the key and the file, for every way that can go wrong
(a TSIG algorithm fodns cannot sign with included)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support import (
    EXAMPLE_ZONE,
    REPOSITORY,
    SECRET,
    FodnsProcess,
    api_request,
    write_config,
)
from tests.support.transfer import ALLOW_KEY, pull

ALLOW_XFR = f"allow_transfer = [{ALLOW_KEY}]\n"
TOKEN = "credentials-test-token"
StartFodns = Callable[..., FodnsProcess]


def xfr_key_table(source: str, algorithm: str = "hmac-sha256") -> str:
    """The [tsig.xfr] table with `source` (secret, secret_file or credential lines)."""
    return f'[tsig.xfr]\nalgorithm = "{algorithm}"\n{source}'


def config_with_key(directory: Path, source: str, algorithm: str = "hmac-sha256") -> Path:
    """A config whose zone may be transferred with key xfr, its secret from `source`."""
    return write_config(
        directory,
        [("fo.example.net", EXAMPLE_ZONE)],
        zone_extra=ALLOW_XFR,
        extra=xfr_key_table(source, algorithm),
    )


def secret_file(path: Path, text: str) -> Path:
    """A root-only file, as an operator keeps a secret."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(0o600)
    return path


def test_a_tsig_secret_from_a_file_relative_to_the_config(
    fodns_factory: StartFodns, tmp_path: Path
) -> None:
    secret_file(tmp_path / "keys" / "xfr.key", f"\n  {SECRET}  \n")  # whitespace is ignored
    running = fodns_factory(
        TOKEN, tmp_path, zone_extra=ALLOW_XFR, extra=xfr_key_table('secret_file = "keys/xfr.key"\n')
    )
    assert SECRET not in (tmp_path / "fodns.toml").read_text()
    assert pull(running).find_rdataset("www", "A")


def test_a_tsig_secret_from_a_systemd_credential(
    fodns_factory: StartFodns, tmp_path: Path, workers: int
) -> None:
    """What LoadCredential=tsig-xfr:/etc/fodns/tsig-xfr.key sets up: the file in a
    directory named by $CREDENTIALS_DIRECTORY."""
    credentials = tmp_path / "credentials"
    secret_file(credentials / "tsig-xfr", SECRET + "\n")
    running = fodns_factory(
        TOKEN,
        workers=workers,
        zone_extra=ALLOW_XFR,
        extra=xfr_key_table('credential = "tsig-xfr"\n'),
        env={"CREDENTIALS_DIRECTORY": str(credentials)},
    )
    assert SECRET not in (tmp_path / "fodns0" / "fodns.toml").read_text()
    assert pull(running).find_rdataset("www", "A")


def test_the_admin_token_from_a_systemd_credential(
    fodns_factory: StartFodns, tmp_path: Path
) -> None:
    """LoadCredential=admin-token:/etc/fodns/admin-token: no token in the config or the
    environment, none generated, and the credential's token is the one that works. It
    comes before FODNS_ADMIN_TOKEN, which a unit may still carry from an older setup."""
    credentials = tmp_path / "credentials"
    secret_file(credentials / "admin-token", "token-from-the-credential\n")
    running = fodns_factory(
        "older-token-from-env", tmp_path, env={"CREDENTIALS_DIRECTORY": str(credentials)}
    )
    assert api_request(running, "GET", "/v1/apps", token="token-from-the-credential")[0] == 200
    assert api_request(running, "GET", "/v1/apps", token="older-token-from-env")[0] == 401
    assert not (tmp_path / "admin-token").exists(), "no token should have been generated"


def run_serve(config: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`fodns serve` expected to stop on its own with a start-up error."""
    return subprocess.run(
        [sys.executable, "-m", "fodns", "serve", "--config", str(config)],
        cwd=REPOSITORY,
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, "FODNS_ADMIN_TOKEN": TOKEN, **(env or {})},
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


@pytest.mark.parametrize(
    "algorithm",
    ["hmac-md5", "HMAC-MD5.SIG-ALG.REG.INT", "hmac-sha256-128", "gss-tsig", "sha256", ""],
)
def test_a_tsig_algorithm_fodns_does_not_sign_with_stops_start_up(
    tmp_path: Path, algorithm: str
) -> None:
    """Not at the first signed request, where it would fail a transfer (or a NOTIFY) with
    an exception: at start-up, naming the key and the algorithms there are."""
    config = config_with_key(tmp_path, f'secret = "{SECRET}"\n', algorithm)
    result = run_serve(config)
    assert result.returncode == 2, result.stderr
    assert (
        f"fodns: error: {config}: tsig.xfr.algorithm: {algorithm!r} is not a TSIG algorithm"
        " fodns signs with (one of hmac-sha256, hmac-sha384, hmac-sha512, hmac-sha224,"
        " hmac-sha1)"
    ) in result.stderr


def test_the_default_algorithm_is_hmac_sha256(fodns_factory: StartFodns) -> None:
    """A [tsig] table without `algorithm` is hmac-sha256, what the guides' secondaries use."""
    running = fodns_factory(TOKEN, zone_extra=ALLOW_XFR, extra=f'[tsig.xfr]\nsecret = "{SECRET}"\n')
    assert pull(running).find_rdataset("www", "A")
