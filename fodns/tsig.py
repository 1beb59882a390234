"""TSIG (RFC 8945) for the server's side: the configured keys, and signing a reply
that fodns rendered itself (answers come prebuilt, not as dnspython messages)."""

from __future__ import annotations

import time
from typing import Any

import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.tsig
import dns.tsigkeyring

from fodns.config import TsigKeyConfig
from fodns.wire import tsig_record

Keyring = dict[dns.name.Name, dns.tsig.Key]
# dnspython's signer, which its type hints leave untyped.
TSIG_SIGN: Any = dns.tsig.sign
MAX_MAC_SIZE = 64  # HMAC-SHA512's, the longest of the algorithms fodns accepts


def tsig_keyring(keys: dict[str, TsigKeyConfig]) -> Keyring | None:
    """The configured TSIG keys as dnspython wants them, or None when there are none."""
    if not keys:
        return None
    ring: Keyring = dns.tsigkeyring.from_text({n: (k.algorithm, k.secret) for n, k in keys.items()})
    return ring


def sign_reply(
    reply: bytes, key: dns.tsig.Key, query_tsig: dns.rdata.Rdata, request_mac: bytes
) -> bytes:
    """`reply` with a TSIG record appended, its MAC over the reply and the query's MAC
    (RFC 8945 §5.3), with the query's fudge and original ID."""
    now = int(time.time())
    unsigned = query_tsig.replace(time_signed=now, mac=b"", error=0, other=b"")
    signed, _ = TSIG_SIGN(reply, key, unsigned, now, request_mac, None, False)
    additional = int.from_bytes(reply[10:12], "big") + 1
    return reply[:10] + additional.to_bytes(2, "big") + reply[12:] + tsig_record(key.name, signed)
