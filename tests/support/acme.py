"""The acme-dns API of a running `fodns serve`, called as an ACME client (lego, say) calls it."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tests.support.process import FodnsProcess


def acme_table(**keys: object) -> str:
    """An [acme] table listening on an OS-picked loopback port, with `keys` (TOML values
    written with json.dumps: strings quoted, numbers as they are)."""
    lines = ['listen = "127.0.0.1:0"', *(f"{key} = {json.dumps(v)}" for key, v in keys.items())]
    return "[acme]\n" + "\n".join(lines) + "\n"


def acme_port(server: FodnsProcess) -> int:
    """The port the acme-dns API listens on, from fodns's acme_listening log event."""
    (event,) = server.log_events("acme_listening")
    return int(str(event["listen"]).rpartition(":")[2])


@dataclass(frozen=True)
class Account:
    """What /register answered: the credentials and the name they set."""

    username: str
    password: str
    subdomain: str
    fulldomain: str
    allowfrom: list[str]

    @classmethod
    def of(cls, reply: dict[str, Any]) -> Account:
        return cls(
            reply["username"],
            reply["password"],
            reply["subdomain"],
            reply["fulldomain"],
            reply["allowfrom"],
        )


class AcmeClient:
    """Calls to one fodns's acme-dns API."""

    def __init__(self, server: FodnsProcess) -> None:
        self.base = f"http://127.0.0.1:{acme_port(server)}"

    def call(
        self,
        method: str,
        path: str,
        body: bytes | dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, Any, dict[str, str]]:
        """(status, the decoded JSON body or None, the headers lower-cased)."""
        data = json.dumps(body).encode() if isinstance(body, dict) else body
        request = urllib.request.Request(
            self.base + path, data=data, method=method, headers=headers or {}
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                raw, status = response.read(), response.status
                found = {k.lower(): v for k, v in response.headers.items()}
        except urllib.error.HTTPError as error:
            raw, status = error.read(), error.code
            found = {k.lower(): v for k, v in error.headers.items()}
        return status, json.loads(raw) if raw else None, found

    def register(
        self, token: str | None = None, allowfrom: list[str] | None = None
    ) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        body = None if allowfrom is None else {"allowfrom": allowfrom}
        status, reply, _ = self.call("POST", "/register", body, headers)
        return status, reply

    def account(self, token: str | None = None, allowfrom: list[str] | None = None) -> Account:
        status, reply = self.register(token, allowfrom)
        assert status == 201, (status, reply)
        return Account.of(reply)

    def update(
        self,
        account: Account,
        txt: Any,
        *,
        subdomain: Any = None,
        user: str | None = None,
        key: str | None = None,
        body: bytes | None = None,
    ) -> tuple[int, Any]:
        """POST /update as `account` (or another `user`/`key`), for its own subdomain
        unless another is given; `body` sends those bytes instead of the JSON."""
        headers = {
            "X-Api-User": account.username if user is None else user,
            "X-Api-Key": account.password if key is None else key,
        }
        sent: bytes | dict[str, Any] = (
            body
            if body is not None
            else {"subdomain": account.subdomain if subdomain is None else subdomain, "txt": txt}
        )
        status, reply, _ = self.call("POST", "/update", sent, headers)
        return status, reply
