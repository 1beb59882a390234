"""Metrics: every Prometheus collector of fodns, declared here on an injected registry.

The DNS hot path bumps plain integers (see `querystats`); a custom collector
turns them into samples only when /metrics is scraped.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

from fodns import querystats


class QueryCollector(Collector):
    """fodns_dns_queries_total{qtype,rcode} summed over every worker's counters."""

    def __init__(self, counter_sources: Callable[[], list[list[int]]]) -> None:
        self.counter_sources = counter_sources

    def collect(
        self,
    ) -> Iterator[CounterMetricFamily | GaugeMetricFamily | HistogramMetricFamily]:
        totals = querystats.new_counters()
        sources = self.counter_sources()
        for counters in sources:
            for index, value in enumerate(counters):
                totals[index] += value
        queries = CounterMetricFamily(
            "fodns_dns_queries",
            "DNS queries answered, by QTYPE and RCODE",
            labels=["qtype", "rcode"],
        )
        for qtype, rcode, count in querystats.labelled(totals):
            queries.add_metric([qtype, rcode], count)
        yield queries
        dropped = CounterMetricFamily(
            "fodns_dns_dropped", "DNS messages dropped without a reply (no header, or a response)"
        )
        dropped.add_metric([], totals[querystats.DROPPED])
        yield dropped
        left_out = CounterMetricFamily(
            "fodns_transfer_records_left_out",
            "Records left out of zone transfers: too large for any DNS message (64 KiB)",
        )
        left_out.add_metric([], totals[querystats.TRANSFER_RECORDS_LEFT_OUT])
        yield left_out
        workers = GaugeMetricFamily("fodns_dns_workers", "DNS worker processes reporting")
        workers.add_metric([], len(sources))
        yield workers
        yield self._latency(totals)
        yield from self._tcp(totals)
        yield from self._rate_limiting(totals)

    @staticmethod
    def _tcp(totals: list[int]) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        closed = CounterMetricFamily(
            "fodns_dns_tcp_connections_closed",
            "TCP connections the server closed or refused, by reason (idle, message_timeout,"
            " write_timeout, evicted to make room, over source_cap, over total_cap)",
            labels=["reason"],
        )
        for reason, index in querystats.TCP_CLOSED.items():
            closed.add_metric([reason], totals[index])
        yield closed
        open_now = GaugeMetricFamily(
            "fodns_dns_tcp_connections", "TCP connections open, summed over DNS workers"
        )
        open_now.add_metric([], totals[querystats.TCP_OPEN])
        yield open_now

    @staticmethod
    def _rate_limiting(totals: list[int]) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        """What response rate limiting (see rrl) did to UDP replies, over every worker."""
        dropped = CounterMetricFamily(
            "fodns_dns_rrl_dropped", "UDP replies dropped by response rate limiting"
        )
        dropped.add_metric([], totals[querystats.RRL_DROPPED])
        slipped = CounterMetricFamily(
            "fodns_dns_rrl_slipped",
            "UDP replies over the rate limit sent truncated instead (TC=1, no records)",
        )
        slipped.add_metric([], totals[querystats.RRL_SLIPPED])
        limited = GaugeMetricFamily(
            "fodns_dns_rrl_limited_prefixes",
            "Source networks over the rate limit in the last second (summed over workers)",
        )
        limited.add_metric([], totals[querystats.RRL_LIMITED_PREFIXES])
        yield from (dropped, slipped, limited)

    @staticmethod
    def _latency(totals: list[int]) -> HistogramMetricFamily:
        """Time from a batch of queries arriving to its replies leaving, per query."""
        buckets = []
        cumulative = 0
        for index, bound in enumerate(querystats.LATENCY_BOUNDS):
            cumulative += totals[querystats.LATENCY_BASE + index]
            buckets.append((str(bound), cumulative))
        cumulative += totals[querystats.LATENCY_BASE + len(querystats.LATENCY_BOUNDS)]
        buckets.append(("+Inf", cumulative))
        histogram = HistogramMetricFamily(
            "fodns_dns_answer_latency_seconds",
            "Seconds from a query's arrival to its reply being sent (UDP, per batch)",
        )
        histogram.add_metric([], buckets, totals[querystats.LATENCY_SUM] / 1_000_000)
        return histogram


class ApiMetrics:
    """What the admin API counts: requests by route and status, switches, table changes."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "fodns_api_requests",
            "Admin API requests by route template, method and status",
            ["route", "method", "status"],
            registry=registry,
        )
        self.switches = Counter(
            "fodns_groups_switches", "Groups switched to their other side", registry=registry
        )
        self.table_changes = Counter(
            "fodns_table_changes",
            "Committed changes applied to the answer table (each an incremental rebuild)",
            registry=registry,
        )
        self.changes_not_served = Counter(
            "fodns_api_changes_not_served",
            "Changes committed but not served by every DNS worker in time (answered 202)",
            registry=registry,
        )


class ServiceCollector(Collector):
    """fodns's own health: readiness, worker restarts, the store's failed writes,
    stored values that cannot be served."""

    def __init__(self, state: Callable[[], dict[str, float]]) -> None:
        self.state = state

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        state = self.state()
        ready = GaugeMetricFamily("fodns_ready", "1 when /healthz says ready, else 0")
        ready.add_metric([], state["ready"])
        restarts = CounterMetricFamily(
            "fodns_dns_worker_restarts", "DNS worker processes replaced after dying"
        )
        restarts.add_metric([], state["worker_restarts"])
        failures = CounterMetricFamily(
            "fodns_store_write_failures", "Writes the database failed (disk full, I/O, read-only)"
        )
        failures.add_metric([], state["store_write_failures"])
        unservable = GaugeMetricFamily(
            "fodns_groups_unservable_values",
            "Stored web-head values that cannot be put on the wire (left out of answers)",
        )
        unservable.add_metric([], state["unservable_values"])
        yield from (ready, restarts, failures, unservable)


class Route53Collector(Collector):
    """The Route53 mirror's state per zone: pending events, lag, last success, errors,
    record sets it leaves alone (too big for Route53, or others' records in the way)."""

    def __init__(self, health: Callable[[], dict[str, Any]]) -> None:
        self.health = health

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        health = self.health()
        pending = GaugeMetricFamily(
            "fodns_route53_pending_events",
            "Events not yet mirrored to Route53",
            labels=["zone"],
        )
        lag = GaugeMetricFamily(
            "fodns_route53_lag_seconds",
            "Age of the oldest event not yet mirrored to Route53 (0 when in sync)",
            labels=["zone"],
        )
        since = GaugeMetricFamily(
            "fodns_route53_seconds_since_success",
            "Seconds since Route53 last accepted a change or a comparison (NaN: never)",
            labels=["zone"],
        )
        batches = CounterMetricFamily(
            "fodns_route53_batches", "Change batches Route53 accepted", labels=["zone"]
        )
        zone_errors = CounterMetricFamily(
            "fodns_route53_zone_errors", "Failed Route53 calls per zone", labels=["zone"]
        )
        failing = GaugeMetricFamily(
            "fodns_route53_consecutive_failures",
            "Route53 calls for the zone that failed since the last success (0: working)",
            labels=["zone"],
        )
        skipped = GaugeMetricFamily(
            "fodns_route53_skipped_record_sets",
            "Record sets too big for one Route53 request, not mirrored",
            labels=["zone"],
        )
        conflicts = GaugeMetricFamily(
            "fodns_route53_conflicts",
            "Record sets fodns cannot write because records it did not write are in the way",
            labels=["zone"],
        )
        for zone, state in health["zones"].items():
            pending.add_metric([zone], state["pending_events"])
            lag.add_metric([zone], state["lag_seconds"])
            ago = state["last_success_seconds_ago"]
            since.add_metric([zone], float("nan") if ago is None else ago)
            batches.add_metric([zone], state["batches"])
            zone_errors.add_metric([zone], state["errors"])
            failing.add_metric([zone], state["consecutive_failures"])
            skipped.add_metric([zone], len(state["skipped_record_sets"]))
            conflicts.add_metric([zone], len(state["conflicts"]))
        errors = CounterMetricFamily(
            "fodns_route53_errors", "Failed Route53 calls by error kind", labels=["kind"]
        )
        for kind, count in health["errors"].items():
            errors.add_metric([kind], count)
        yield from (pending, lag, since, batches, errors, zone_errors, failing, skipped, conflicts)


class HealthMetrics:
    """The health checker's collectors: checks by app and result, their latency, each
    app's state for decisions, automatic switches."""

    STATES: ClassVar[dict[str, float]] = {"up": 1.0, "down": 0.0, "unknown": -1.0}

    def __init__(self, registry: CollectorRegistry) -> None:
        self.checks = Counter(
            "fodns_health_checks",
            "Health check attempts, by app and result (ok or fail)",
            ["app", "result"],
            registry=registry,
        )
        self.latency = Histogram(
            "fodns_health_check_seconds",
            "Health check attempt latency, failures included (a timeout counts its wait)",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
            registry=registry,
        )
        self.app_up = Gauge(
            "fodns_app_up",
            "An app's health for automatic failover: 1 up, 0 down, -1 unknown",
            ["app"],
            registry=registry,
        )
        self.auto_switches = Counter(
            "fodns_auto_switches", "Groups switched by health", registry=registry
        )
        self.pinned = Gauge(
            "fodns_groups_pinned", "Automatic groups a person has pinned", registry=registry
        )

    def checked(self, app: str, ok: bool, seconds: float) -> None:
        self.checks.labels(app, "ok" if ok else "fail").inc()
        self.latency.observe(seconds)

    def app_state(self, app: str, state: str) -> None:
        self.app_up.labels(app).set(self.STATES.get(state, -1.0))

    def forget(self, app: str) -> None:
        """An app no longer checked (or renamed): its series go, so they do not pile up."""
        for result in ("ok", "fail"):
            with contextlib.suppress(KeyError):
                self.checks.remove(app, result)
        with contextlib.suppress(KeyError):
            self.app_up.remove(app)


@dataclass(frozen=True)
class WebhookStats:
    """What the deliverer says of its webhooks when /metrics is scraped: how many events
    of the log each has still to follow (by webhook id), and how many have given up."""

    lag_events: dict[str, int]
    failed: int


class WebhookCollector(Collector):
    """fodns_webhook_lag_events{webhook} and fodns_webhooks_failed, read at scrape time."""

    def __init__(self, stats: Callable[[], WebhookStats]) -> None:
        self.stats = stats

    def collect(self) -> Iterator[GaugeMetricFamily]:
        stats = self.stats()
        lag = GaugeMetricFamily(
            "fodns_webhook_lag_events",
            "Events of the log after the webhook's cursor (not yet delivered or passed over;"
            " a paused or failed webhook's grows)",
            labels=["webhook"],
        )
        for webhook, events in sorted(stats.lag_events.items()):
            lag.add_metric([webhook], events)
        failed = GaugeMetricFamily(
            "fodns_webhooks_failed",
            "Webhooks that gave up on an event and stopped (resume with PATCH active true)",
        )
        failed.add_metric([], stats.failed)
        yield from (lag, failed)


class WebhookMetrics:
    """The webhook deliverer's counters: attempts by webhook and result, their latency."""

    RESULTS = ("delivered", "retrying", "failed", "test")

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.deliveries = Counter(
            "fodns_webhook_deliveries",
            "Webhook delivery attempts by webhook and result (delivered; retrying: failed,"
            " tried again later; failed: given up; test)",
            ["webhook", "result"],
            registry=registry,
        )
        self.latency = Histogram(
            "fodns_webhook_delivery_seconds",
            "Webhook delivery attempt latency, failures included (a timeout counts its wait)",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
            registry=registry,
        )

    def follow(self, stats: Callable[[], WebhookStats]) -> None:
        """Report `stats` (the deliverer's) at every scrape."""
        self.registry.register(WebhookCollector(stats))

    def attempted(self, webhook: str, result: str, seconds: float) -> None:
        self.deliveries.labels(webhook, result).inc()
        self.latency.observe(seconds)

    def forget(self, webhook: str) -> None:
        """A deleted webhook's series go, so they do not pile up."""
        for result in self.RESULTS:
            with contextlib.suppress(KeyError):
                self.deliveries.remove(webhook, result)


class MirrorHealth(Protocol):
    def health(self) -> dict[str, Any]: ...


def build_registry(
    counter_sources: Callable[[], list[list[int]]],
    mirror: MirrorHealth | None = None,
    service: Callable[[], dict[str, float]] | None = None,
) -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(QueryCollector(counter_sources))
    if mirror is not None:
        registry.register(Route53Collector(mirror.health))
    if service is not None:
        registry.register(ServiceCollector(service))
    return registry
