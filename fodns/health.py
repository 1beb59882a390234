"""What /healthz says: whether fodns is ready, and what is degraded.

Ready means every DNS worker is up and serves what the store holds (none more
than SERVED_DEADLINE behind the event log), every configured zone is loaded,
and the database takes writes. Only then is the answer 200; otherwise it is
503 with each problem named, so a load balancer or an orchestrator never
sends traffic or a switch to a fodns that cannot honour it. Degraded parts
(the Route53 mirror, NOTIFY to secondaries) are reported without making fodns
unready: DNS and switches still work without them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from fodns.store import Store

# A change committed longer ago than this and not yet served by a worker means the
# worker is stuck: the API waits this long for a change to be served, too.
SERVED_DEADLINE = 2.0
# The store writes a heartbeat row this often; without a successful write for
# STORE_SILENCE_LIMIT seconds, it is not known to take writes.
STORE_HEARTBEAT_INTERVAL = 10.0
STORE_SILENCE_LIMIT = 3 * STORE_HEARTBEAT_INTERVAL + 5.0
# The Route53 mirror counts as degraded when its oldest unmirrored change is
# older than this, or when a zone's calls have failed this many times in a row.
ROUTE53_LAG_LIMIT = 60.0
ROUTE53_FAILURES_LIMIT = 3
# A webhook counts as degraded when one event has been retried for longer than this
# (a receiver down for minutes, not one refused attempt), or when it gave up.
WEBHOOK_RETRYING_LIMIT = 300.0


class MirrorState(Protocol):
    def health(self) -> dict[str, Any]: ...

    def alive(self) -> bool: ...


class NotifyState(Protocol):
    def health(self) -> list[dict[str, Any]]: ...


class CheckerState(Protocol):
    def state(self) -> dict[str, Any]: ...


class WebhooksState(Protocol):
    def health(self) -> list[dict[str, Any]]: ...


@dataclass
class HealthSources:
    """Where /healthz looks: the store, the DNS workers' states, and the optional parts."""

    store: Store
    zones: list[str]  # configured zone names
    workers_wanted: int
    dns_states: Callable[[], list[dict[str, Any]]]  # see workers.WorkerPool.states
    listen: list[str]
    mirror: MirrorState | None = None
    notifier: NotifyState | None = None
    checker: CheckerState | None = None
    webhooks: WebhooksState | None = None


def health_report(sources: HealthSources) -> dict[str, Any]:
    """The /healthz body: `ready`, the `problems` that make it false, what is
    `degraded`, and the state behind each."""
    problems: list[str] = []
    degraded: list[str] = []
    store = sources.store
    report: dict[str, Any] = {"dns": sources.listen, "workers": sources.workers_wanted}

    write = store.write_health
    now = time.time()
    silent = None if write.last_success is None else round(now - write.last_success, 3)
    report["store"] = {
        "writable": write.ok,
        "error": write.error,
        "last_write_seconds_ago": silent,
        "write_failures": write.failures,
    }
    if not write.ok:
        problems.append(f"the database does not take writes: {write.error}")
    elif silent is None or silent > STORE_SILENCE_LIMIT:
        problems.append("the database has not confirmed a write lately")

    try:
        last_seq = store.last_seq()
        serials = {zone: store.serial(zone) for zone in sources.zones}
    except Exception as exc:
        problems.append(f"the database cannot be read: {exc}")
        last_seq, serials = 0, {}
    report["zones"] = serials
    report["last_seq"] = last_seq

    states = sources.dns_states()
    report["dns_workers"] = states
    serving = [state for state in states if state["serving"]]
    if len(serving) < sources.workers_wanted:
        problems.append(f"{len(serving)} of {sources.workers_wanted} DNS workers are serving")
    for state in serving:
        applied = state["applied_seq"]
        if applied < last_seq:
            age = store.event_age(applied + 1)
            if age is not None and age > SERVED_DEADLINE:
                problems.append(
                    f"DNS worker {state['index']} is {last_seq - applied} change(s) behind "
                    f"(oldest {age:.1f} s ago)"
                )
        missing = [zone for zone in sources.zones if zone not in state["serials"]]
        if missing:
            problems.append(f"DNS worker {state['index']} does not serve {', '.join(missing)}")
        behind = [z for z in serials if state["serials"].get(z, serials[z]) < serials[z]]
        if behind and applied >= last_seq:
            degraded.append(
                f"DNS worker {state['index']} serves an older SOA serial of {', '.join(behind)}"
                " (a zone file reload failed there?)"
            )

    if sources.mirror is not None:
        mirror = sources.mirror.health()
        mirror["thread_alive"] = sources.mirror.alive()
        report["route53"] = mirror
        if not mirror["thread_alive"]:
            degraded.append("the Route53 mirror has stopped")
        for zone, state in mirror["zones"].items():
            if state["lag_seconds"] > ROUTE53_LAG_LIMIT:
                degraded.append(f"Route53 is {state['lag_seconds']:.0f} s behind for {zone}")
            if state["consecutive_failures"] >= ROUTE53_FAILURES_LIMIT:
                error = state["last_error"] or {}
                degraded.append(
                    f"Route53 calls for {zone} failed {state['consecutive_failures']} times"
                    f" in a row ({error.get('kind')})"
                )
            if state["skipped_record_sets"]:
                degraded.append(
                    f"{len(state['skipped_record_sets'])} record set(s) of {zone} are too big"
                    " for Route53 and are not mirrored"
                )
            if state["conflicts"]:
                degraded.append(
                    f"{len(state['conflicts'])} record set(s) of {zone} are not mirrored:"
                    " records fodns did not write are in the way in the hosted zone"
                )
    if sources.notifier is not None:
        notify = sources.notifier.health()
        report["notify"] = notify
        for target in notify:
            if target["outcome"] != "answered":
                degraded.append(
                    f"NOTIFY for {target['zone']} to {target['target']}: {target['outcome']}"
                )

    if sources.checker is not None:
        # Health checks down make automatic failover wait; DNS and people's switches
        # still work, so they are degraded, never unready.
        checks = sources.checker.state()
        report["health_checks"] = checks
        if checks["apps_checked"] and not checks["process_running"]:
            degraded.append("the health check process is not running (it is being restarted)")
        elif checks["stale"]:
            degraded.append(
                "health checks have reported nothing for "
                f"{checks['last_result_seconds_ago']:.0f} s (automatic failover waits)"
            )

    if sources.webhooks is not None:
        # A receiver that is down loses nothing (its events wait, in order), and DNS and
        # switches go on: degraded, never unready. Paused is a person's choice: neither.
        hooks = sources.webhooks.health()
        report["webhooks"] = hooks
        for hook in hooks:
            retrying = hook["retrying"]
            if hook["state"] == "failed":
                degraded.append(
                    f"webhook {hook['id']} ({hook['url']}) gave up on event {hook['failed_seq']}"
                    ' and stopped: resume it with PATCH /v1/webhooks/{id} {"active": true}'
                )
            elif (
                hook["state"] == "active"
                and retrying is not None
                and (retrying["seconds"] or 0) > WEBHOOK_RETRYING_LIMIT
            ):
                degraded.append(
                    f"webhook {hook['id']} ({hook['url']}) has been retrying event "
                    f"{retrying['seq']} for {retrying['seconds']:.0f} s "
                    f"({retrying['attempts']} attempts)"
                )

    return {"ready": not problems, "problems": problems, "degraded": degraded, **report}
