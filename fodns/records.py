"""What a group answers: the one derivation from a group and its apps to its records.

A group answers with its active app's web head: A and AAAA records for
addresses, a CNAME for a hostname, with the group's TTL. The DNS table, zone
transfers and their journal, the Route53 mirror and the API's JSON all take a
group's records from `group_answer`, so they can never disagree.

Values are checked when they are stored (model.check_web_head), but a database
written by an older fodns, or by hand, may hold one that cannot be put on the
wire (a scoped IPv6 address such as fe80::1%eth0). Such a value is left out of
every answer, logged once per process and counted; the rest of the web head,
and every other group, is served as usual: one bad record never takes the rest
down.
"""

from __future__ import annotations

import functools
import socket
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import dns.exception
import dns.name

from fodns.logs import get_logger
from fodns.model import App, Group

log = get_logger()

# (type, data) of one record, e.g. ("A", "192.0.2.10").
Record = tuple[str, str]

# Values this process found it cannot serve, with the reason: logged once each,
# and counted by metrics (fodns_groups_unservable_values).
_unservable: dict[str, str] = {}
_unservable_lock = threading.Lock()


@dataclass(frozen=True, slots=True)
class GroupAnswer:
    """The records a group serves now: owner, TTL, and (type, data) of each record."""

    fqdn: str  # label.zone, no trailing dot
    ttl: int
    records: tuple[Record, ...]


def answer_json(group: Group, apps: Mapping[str, App]) -> dict[str, Any]:
    """A group as the API shows it: its fields and the records it answers with now."""
    return {
        **group.to_json(),
        "answer": [{"type": t, "data": d} for t, d in group_answer(group, apps).records],
    }


def group_answer(group: Group, apps: Mapping[str, App]) -> GroupAnswer:
    """What `group` answers with, its apps being `apps` (by name)."""
    active = None if group.active_app is None else apps.get(group.active_app)
    return GroupAnswer(group.fqdn, group.ttl, app_records(active))


def app_records(app: App | None) -> tuple[Record, ...]:
    """The records of a group whose active side is `app` (None: no app there): the one
    place group_answer and start-up (which reads groups as rows, not Groups) take them."""
    return () if app is None else head_records(app.answered_head)


@functools.lru_cache(maxsize=65536)
def head_records(head: Sequence[str]) -> tuple[Record, ...]:
    """(type, data) of each servable value of a web head, in its order.

    Stored values are normalised: a hostname ends in a dot, an IPv6 address has
    colons, anything else is IPv4. A value that cannot be written in wire form
    is left out (see the module's docstring).
    """
    records = []
    for value in head:
        kind = "CNAME" if value.endswith(".") else "AAAA" if ":" in value else "A"
        why = unservable_reason(kind, value)
        if why is None:
            records.append((kind, value))
        else:
            _note_unservable(value, why)
    return tuple(records)


def unservable_reason(kind: str, value: str) -> str | None:
    """Why a stored value cannot be served as a record of `kind`, or None if it can."""
    try:
        if kind == "CNAME":
            dns.name.from_text(value)
        else:
            socket.inet_pton(socket.AF_INET if kind == "A" else socket.AF_INET6, value)
    except (OSError, ValueError, dns.exception.DNSException) as exc:
        return f"not a valid {kind} record: {exc}"
    return None


def _note_unservable(value: str, why: str) -> None:
    with _unservable_lock:
        if value in _unservable:
            return
        _unservable[value] = why
    log.error("record_unservable", value=value, reason=why, served="the rest of the web head")


def unservable_values() -> dict[str, str]:
    """Every stored value this process has found it cannot serve, with the reason."""
    with _unservable_lock:
        return dict(_unservable)
