"""The change feed: what a run of committed events touched, and the consumers that follow it.

The event log is the spine (see the store): every consumer of changes (the
answer table of each DNS process, NOTIFY, the Route53 mirror, the API's wait
until a change is served) keeps a cursor, the seq of the last event it applied,
and catches up by asking the store what the events after its cursor touched.
Each event carries what it touched (`model.Touch`, written with it at commit:
for an app event, the groups that used the app then); `touched` joins them for
a run of events, and nothing else works it out again. The store then reads the
touched groups and apps as they are now, all at one moment
(`Store.touched_since`), so a consumer that applies the result ends up as the
store is, however many events it read at once, and never applies an older state
over a newer one.

This module imports only the model: the store, the table and every consumer
import it, never the other way round.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Protocol

from fodns.model import App, ChallengeRecords, Event, Group, GroupKey, Touch

# How often a follower looks at the log without being woken: how late a change is
# served when its wake-up was lost, or when another process wrote it (nothing wakes
# anyone then). Wake-ups do the work; this is the safety net, so it is slow.
SAFETY_POLL_INTERVAL = 0.2


def touched(events: Iterable[Event]) -> Touch:
    """What `events` touched, together: what each says it touched (`Event.touched`,
    worked out once when it was written), so following the log needs no read of the
    store to know which groups an app event reached."""
    groups: set[GroupKey] = set()
    apps: set[str] = set()
    zones: set[str] = set()
    names: set[GroupKey] = set()
    for event in events:
        groups |= event.touched.groups
        apps |= event.touched.apps
        zones |= event.touched.zones
        names |= event.touched.names
    return Touch(frozenset(groups), frozenset(apps), frozenset(zones), frozenset(names))


@dataclass(frozen=True)
class Touched:
    """What the events after a cursor touched, each in its state now, all read at one
    moment: what a consumer of the feed applies to catch up."""

    last_seq: int  # the newest event included; the cursor to ask from next time
    events: tuple[Event, ...] = ()
    groups: tuple[Group, ...] = ()  # touched groups that exist, as they are now
    deleted_groups: tuple[GroupKey, ...] = ()  # (zone, label) of those that are gone
    apps: dict[str, App] = field(default_factory=dict)  # the apps `groups` reference
    serials: dict[str, int] = field(default_factory=dict)  # each touched zone's serial now
    # The touched ACME challenge names' records now, by (zone, name); no values: gone.
    challenges: dict[GroupKey, ChallengeRecords] = field(default_factory=dict)
    # The read stopped at its bound with events left after `last_seq`: read again.
    # False: the log held nothing more when it was read (what comes later wakes the
    # consumer again, or the safety poll finds it).
    more: bool = False

    def in_zone(self, zone: str) -> tuple[list[Group], list[str]]:
        """The touched groups of one zone that exist, and the labels of those gone."""
        return (
            [group for group in self.groups if group.zone == zone],
            [label for touched_zone, label in self.deleted_groups if touched_zone == zone],
        )


class TouchedSource(Protocol):
    """The store's read that following the log needs (see store.Store.touched_since)."""

    def touched_since(self, seq: int) -> Touched: ...


class Consumer(Protocol):
    """One follower of the log: its cursor, and how it applies what events touched."""

    applied_seq: int  # the seq of the last event applied

    def apply(self, touched: Touched) -> None: ...


def catch_up(source: TouchedSource, consumer: Consumer) -> int:
    """Apply every event after the consumer's cursor, in sequence order; the new cursor.

    The store reads a bounded run of events at a time, so a consumer far behind
    catches up in steps. The cursor moves only after `apply` returns: a consumer
    that raises reads the same events again next time, never skips them. A run
    that the log ended (not the bound) is the last: no second read to learn that
    nothing came, which on the path from a switch to served is one read too many.
    """
    while True:
        touched_now = source.touched_since(consumer.applied_seq)
        if not touched_now.events or touched_now.last_seq <= consumer.applied_seq:
            return consumer.applied_seq
        consumer.apply(touched_now)
        consumer.applied_seq = touched_now.last_seq
        if not touched_now.more:
            return consumer.applied_seq
