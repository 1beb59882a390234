"""The admin token: from the config, else FODNS_ADMIN_TOKEN, else generated once and kept."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from fodns.logs import get_logger

log = get_logger()
ADMIN = "admin"  # the token's name: the actor recorded in events
TOKEN_FILE = "admin-token"  # beside the database


def admin_tokens(configured: str | None, database: Path) -> dict[str, str]:
    """{token: name} for the API. A generated token is written with mode 0600 beside
    the database on first start, reused after, and its path (never its value) logged."""
    if configured:
        return {configured: ADMIN}
    from_environment = os.environ.get("FODNS_ADMIN_TOKEN")
    if from_environment:
        return {from_environment: ADMIN}
    path = database.parent / TOKEN_FILE
    if path.exists():
        token = path.read_text().strip()
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        token = secrets.token_urlsafe(32)
        # O_EXCL and mode 0600 at creation: never readable by others, even briefly.
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as file:
            file.write(token + "\n")
        log.info("admin_token_generated", path=str(path))
    log.info("admin_token_file", path=str(path))
    return {token: ADMIN}
