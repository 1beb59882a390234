"""TSIG (RFC 8945) for the server's side: the configured keys, and signing a reply
that fodns rendered itself (answers come prebuilt, not as dnspython messages)."""

from __future__ import annotations

import time
from typing import Any, NamedTuple

import dns.exception
import dns.message
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
# RFC 8945 §5.2: the TSIG errors for a bad MAC, a key the server does not know,
# and a time outside the fudge.
BADSIG, BADKEY, BADTIME = 16, 17, 18
# RFC 8945 §10: "The RECOMMENDED value in most situations is 300 seconds." A
# client's own fudge is honoured only up to this: a fudge of 65535 would let a
# captured request be replayed for 18 hours.
MAX_FUDGE = 300


class Verdict(NamedTuple):
    """A signed request, checked: `error` is 0 or the TSIG error to reply with;
    `key` is the request's key when its MAC is good (error 0 or BADTIME), the key
    to sign the reply with; `request` is the request, read with that key when
    error is 0 (dnspython then keeps the key and the request MAC on it)."""

    error: int
    key: dns.tsig.Key | None
    request: dns.message.Message


def check_request(
    wire: bytes, unverified: dns.message.Message, keyring: Keyring | None, now: int | None = None
) -> Verdict:
    """The signed request `wire` (already read, unverified, as `unverified`) checked
    as RFC 8945 §5.2 orders it: the key (§5.2.1), the MAC (§5.2.2), the time (§5.2.3).

    dnspython checks the MAC before the time, so its BadTime means the MAC was
    good, as does our tighter bound on the fudge: only then may a BADTIME reply
    be signed.
    """
    assert unverified.keyname is not None
    key = keyring.get(unverified.keyname) if keyring else None
    if key is None:
        return Verdict(BADKEY, None, unverified)
    try:
        request = dns.message.from_wire(wire, keyring=key)
    except dns.tsig.BadTime:
        return Verdict(BADTIME, key, unverified)
    except (dns.tsig.BadKey, dns.tsig.BadAlgorithm):
        # §5.2.1: an algorithm other than the key's is a key the server does not know.
        return Verdict(BADKEY, None, unverified)
    except dns.exception.DNSException:
        return Verdict(BADSIG, None, unverified)
    tsig: Any = request.tsig[0] if request.tsig else None
    assert tsig is not None
    now = int(time.time()) if now is None else now
    if abs(tsig.time_signed - now) > min(tsig.fudge, MAX_FUDGE):
        return Verdict(BADTIME, key, unverified)
    return Verdict(0, key, request)


def tsig_keyring(keys: dict[str, TsigKeyConfig]) -> Keyring | None:
    """The configured TSIG keys as dnspython wants them, or None when there are none."""
    if not keys:
        return None
    ring: Keyring = dns.tsigkeyring.from_text({n: (k.algorithm, k.secret) for n, k in keys.items()})
    return ring


def sign_reply(
    reply: bytes,
    key: dns.tsig.Key,
    query_tsig: dns.rdata.Rdata,
    request_mac: bytes,
    error: int = 0,
) -> bytes:
    """`reply` with a TSIG record appended, its MAC over the reply and the query's MAC
    (RFC 8945 §5.3), with the query's fudge and original ID.

    A BADTIME reply (`error`) keeps the query's time and carries ours in Other
    Data, so that the client can check its MAC however far apart the clocks are
    (RFC 8945 §5.2.3).
    """
    now = int(time.time())
    if error == BADTIME:
        signed_at = int(query_tsig.time_signed)  # type: ignore[attr-defined]
        other = now.to_bytes(6, "big")  # 48-bit seconds, as Time Signed (§4.2)
    else:
        signed_at, other = now, b""
    unsigned = query_tsig.replace(time_signed=signed_at, mac=b"", error=error, other=other)
    signed, _ = TSIG_SIGN(reply, key, unsigned, signed_at, request_mac, None, False)
    additional = int.from_bytes(reply[10:12], "big") + 1
    return reply[:10] + additional.to_bytes(2, "big") + reply[12:] + tsig_record(key.name, signed)
