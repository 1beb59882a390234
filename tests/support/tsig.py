"""The one TSIG key the tests share with fodns, and the config table that declares it."""

from __future__ import annotations

import dns.name
import dns.tsigkeyring

SECRET = "c2VjcmV0LXNoYXJlZC13aXRoLXRoZS1zZWNvbmRhcnk="
KEY_NAME = "xfr"


def tsig_table(algorithm: str = "hmac-sha256", secret: str = SECRET, name: str = KEY_NAME) -> str:
    """The `[tsig.NAME]` table fodns reads for this key."""
    return f'[tsig.{name}]\nalgorithm = "{algorithm}"\nsecret = "{secret}"\n'


def keyring_for(
    algorithm: str = "hmac-sha256", secret: str = SECRET, name: str = KEY_NAME
) -> dict[dns.name.Name, object]:
    """A dnspython keyring holding the key as a secondary would configure it."""
    keyring: dict[dns.name.Name, object] = dns.tsigkeyring.from_text(
        {f"{name}.": (algorithm, secret)}
    )
    return keyring


TSIG_XFR_TABLE = tsig_table()
KEYRING = keyring_for()
