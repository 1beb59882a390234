"""Token secrets: the bootstrap admin token, and the secrets of named tokens and their hashes.

The bootstrap admin token comes from the config, else FODNS_ADMIN_TOKEN, else is
generated once and kept. Whatever its source, it must be at least TOKEN_MIN_LENGTH characters of
RFC 6750's b64token alphabet: an empty or short token (a config typo, a file
a full disk left empty) would let anyone in, so start-up stops instead, naming
the source. A generated token is written to a temporary file, fsynced and
renamed into place, so a crash never leaves a partial or empty token file.

A named token (POST /v1/tokens) is `fodns_` and 256 random bits, shown once and kept
only as its SHA-256: a secret that random cannot be guessed from its hash, so the
slow, salted hashes that passwords need (bcrypt, argon2) would only slow down every
request; and a copy of the database (a backup) then holds no usable token.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import secrets
from pathlib import Path

from fodns.errors import ConfigError, Invalid
from fodns.logs import get_logger
from fodns.model import ACME_ACTOR, HEALTH_ACTOR

ADMIN = "admin"  # the token's name: the actor recorded in events
# A named token's name: what people type in shells and read in the event log.
TOKEN_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")
# Names no named token may take: the bootstrap token's, health's (the actor of its
# changes), fodns's own and the acme-dns API's, so that the event log's actors stay
# unambiguous.
RESERVED_NAMES = frozenset({ADMIN, HEALTH_ACTOR, "fodns", ACME_ACTOR})
# A named token lasts at most ten years when it is given an expiry (none: until revoked).
EXPIRES_IN_MAX = 3650 * 86400
TOKEN_FILE = "admin-token"  # beside the database
TOKEN_MIN_LENGTH = 16
# RFC 6750 §2.1: what a bearer token may be made of.
B64TOKEN = re.compile(r"^[A-Za-z0-9\-._~+/]+=*$")
# A named token's secret: a prefix that secret scanners (and people) recognise, then
# 32 random bytes as URL-safe base64 (43 characters).
SECRET_PREFIX = "fodns_"
SECRET_BYTES = 32


def check_token_name(name: object) -> str:
    """A named token's name, or Invalid naming `name`."""
    if not isinstance(name, str) or not TOKEN_NAME.fullmatch(name):
        raise Invalid(
            "name",
            "must be 1-63 lower-case letters, digits, '.', '_' or '-', starting with a "
            "letter or digit",
        )
    if name in RESERVED_NAMES:
        raise Invalid("name", f"{name!r} is reserved ({', '.join(sorted(RESERVED_NAMES))})")
    return name


def new_secret() -> str:
    """A new named token's secret (never stored; see secret_hash)."""
    return SECRET_PREFIX + secrets.token_urlsafe(SECRET_BYTES)


def secret_hash(secret: bytes | str) -> str:
    """What the database keeps of a secret, and what a presented one is looked up by:
    its SHA-256 in hex."""
    raw = secret.encode("utf-8", "surrogateescape") if isinstance(secret, str) else secret
    return hashlib.sha256(raw).hexdigest()


def admin_tokens(configured: str | None, database: Path) -> dict[str, str]:
    """{token: name} for the API. A generated token is written with mode 0600 beside
    the database on first start, reused after, and its path (never its value) logged.
    Raises ConfigError for an empty, short or malformed token from any source."""
    if configured is not None:
        return {check_token(configured, "api.token in the config"): ADMIN}
    from_environment = os.environ.get("FODNS_ADMIN_TOKEN")
    if from_environment:  # set but empty counts as unset, as shells often leave it
        return {check_token(from_environment, "FODNS_ADMIN_TOKEN"): ADMIN}
    path = database.parent / TOKEN_FILE
    if path.exists():
        try:
            token = path.read_text().strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{path}: cannot read the admin token: {exc}") from None
        check_token(token, str(path), remedy=f"delete {path} to have a new one generated")
    else:
        token = secrets.token_urlsafe(32)
        write_token_file(path, token)
        get_logger().info("admin_token_generated", path=str(path))
    get_logger().info("admin_token_file", path=str(path))
    return {token: ADMIN}


def check_token(token: str, source: str, remedy: str | None = None) -> str:
    """The token if it is long enough and well formed, else ConfigError naming `source`."""
    if not token:
        problem = "is empty"
    elif len(token) < TOKEN_MIN_LENGTH:
        problem = f"is {len(token)} characters long; at least {TOKEN_MIN_LENGTH} are needed"
    elif not B64TOKEN.fullmatch(token):
        problem = "may only hold letters, digits and -._~+/ (RFC 6750), with = at the end"
    else:
        return token
    advice = remedy or "e.g. `openssl rand -base64 32`"
    raise ConfigError(f"the admin token from {source} {problem} ({advice})")


def write_token_file(path: Path, token: str) -> None:
    """Write `token` to `path` atomically with mode 0600: a temporary file, fsynced,
    renamed into place, and the folder fsynced so the rename itself is durable."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    # O_EXCL and mode 0600 at creation: never readable by others, even briefly.
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "w") as file:
            file.write(token + "\n")
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            temporary.unlink()
        raise
    folder = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)
