"""The API process's book of tokens: which grant a presented bearer token carries.

The bootstrap admin token (fodns/tokens.py) is compared in constant time, as it
always was. Named tokens are looked up by the SHA-256 of what is presented, in a
map held in memory (no database read per request) and read again from the store
whenever a token changes: the API's own token writes reload it before they reply,
so a revoked token is refused before its DELETE is answered. Looking a hash up in a
dict leaks nothing worth timing: a hash's first bytes say nothing of a secret.
Expiry is checked against the clock on each request, so a token stops at its
`expires_at` whether or not anything was reloaded. Only this process answers the
API (DNS workers never do), so one map serves every worker mode.
"""

from __future__ import annotations

import hmac
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from fodns.rows import utc_now
from fodns.scopes import Grant, Scope
from fodns.tokenrows import StoredToken
from fodns.tokens import secret_hash

# The store's read of every named token with its secret's hash (Store.token_hashes).
LoadTokens = Callable[[], list[tuple[str, StoredToken]]]
NOT_GIVEN = "a valid 'Authorization: Bearer <token>' header is required"


@dataclass(frozen=True)
class Refused:
    """Why a request's token is not accepted (a 401's message)."""

    message: str


class TokenBook:
    """The tokens the API accepts: `bootstrap` maps each bootstrap secret to its name
    (the admin token's); `load` reads the named ones (None: there are none, an app
    without a store)."""

    def __init__(self, bootstrap: Mapping[str, str], load: LoadTokens | None = None) -> None:
        self._bootstrap = [(secret.encode(), name) for secret, name in bootstrap.items()]
        self._load = load
        self._by_hash: dict[str, StoredToken] = {}
        # One reload at a time: two overlapping ones could otherwise end in the wrong
        # order, an older read (before a revocation) replacing a newer one.
        self._reloading = threading.Lock()

    def reload(self) -> None:
        """Read the named tokens again (on a thread: it reads the database). Called after
        a token write has committed, it sees that write and every one before it."""
        if self._load is None:
            return
        with self._reloading:
            self._by_hash = dict(self._load())  # replaced whole: readers see one or the other

    def authenticate(self, authorization: str) -> Grant | Refused:
        """The grant of the token an Authorization header presents, or why it is refused:
        none given, unknown, expired or revoked (each a 401)."""
        scheme, _, presented = authorization.partition(" ")
        if scheme.lower() != "bearer" or not presented.strip():
            return Refused(NOT_GIVEN)
        # Headers arrive as text decoded with surrogateescape: bytes that are not
        # UTF-8 survive as surrogates and can never equal a (checked, ASCII) token.
        offered = presented.strip().encode("utf-8", "surrogateescape")
        bootstrap = None
        for secret, name in self._bootstrap:
            if hmac.compare_digest(offered, secret):
                bootstrap = name
        if bootstrap is not None:
            return Grant(bootstrap, Scope.ADMIN, bootstrap=True)
        token = self._by_hash.get(secret_hash(offered))
        if token is None:
            return Refused(NOT_GIVEN)
        state = token.state(utc_now())
        if state == "revoked":
            return Refused(f"the token {token.name!r} was revoked at {token.revoked_at}")
        if state == "expired":
            return Refused(f"the token {token.name!r} expired at {token.expires_at}")
        return token.grant()
