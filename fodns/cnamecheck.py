"""The customer's CNAME check: what each `_acme-challenge.<name>` of a registration points
at, looked up through [acme] resolver (or the system's), and whether that is right.

It says what a CA will find, as far as the resolver fodns is given sees it; it is never
required (a registration works the moment its CNAME is in place, checked or not).
Lookups are asynchronous (dnspython's asyncio resolver), all of a registration's names
at once, each bounded by LOOKUP_TIMEOUT: with workers = 1 the loop that awaits them also
answers DNS, and never waits for them.
"""

from __future__ import annotations

import asyncio
from typing import Any

import dns.asyncresolver
import dns.exception
import dns.name
import dns.resolver

from fodns.acme import Registration, cnames
from fodns.config import ListenAddress

# Seconds one name's lookup may take, retries included (a resolver that never answers
# costs the check this long, once: the names are looked up together).
LOOKUP_TIMEOUT = 2.0


def resolver_of(address: ListenAddress | None) -> dns.asyncresolver.Resolver:
    """The resolver at `address`, or the system's (/etc/resolv.conf) for None."""
    if address is None:
        return dns.asyncresolver.Resolver()
    resolver = dns.asyncresolver.Resolver(configure=False)
    resolver.nameservers = [address.host]
    resolver.port = address.port
    return resolver


async def check_cnames(
    registration: Registration, address: ListenAddress | None
) -> list[dict[str, Any]]:
    """For each record the customer must add: the name, the target it must have, what the
    resolver finds there (`found`: the CNAME's target, or None), `state` (ok, wrong,
    missing or unknown), `ok`, and a sentence for people (`detail`)."""
    wanted = cnames(registration.names, registration.fulldomain)
    if not wanted:
        return []
    try:
        resolver = resolver_of(address)
    except dns.exception.DNSException as exc:  # no /etc/resolv.conf, say
        return [_result(record, None, "unknown", f"no resolver to ask: {exc}") for record in wanted]
    return list(await asyncio.gather(*(_check(resolver, record) for record in wanted)))


async def _check(resolver: dns.asyncresolver.Resolver, record: dict[str, str]) -> dict[str, Any]:
    name, target = record["name"], record["target"]
    try:
        answer = await resolver.resolve(
            name, "CNAME", search=False, raise_on_no_answer=False, lifetime=LOOKUP_TIMEOUT
        )
    except dns.resolver.NXDOMAIN:
        return _result(record, None, "missing", f"{name} does not exist (NXDOMAIN): add the CNAME")
    except dns.exception.Timeout:
        return _result(record, None, "unknown", "the resolver did not answer in time")
    except dns.exception.DNSException as exc:
        return _result(record, None, "unknown", f"the lookup failed: {exc}")
    if answer.rrset is None:
        return _result(record, None, "missing", f"{name} has no CNAME: add it")
    found = answer.rrset[0].target.to_text(omit_final_dot=True).lower()
    if dns.name.from_text(found) == dns.name.from_text(target):
        return _result(record, found, "ok", f"{name} points at {target}")
    return _result(record, found, "wrong", f"{name} points at {found}, not at {target}")


def _result(record: dict[str, str], found: str | None, state: str, detail: str) -> dict[str, Any]:
    return {
        "name": record["name"],
        "target": record["target"],
        "found": found,
        "state": state,
        "ok": state == "ok",
        "detail": detail,
    }
