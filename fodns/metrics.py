"""Metrics: every Prometheus collector of fodns, declared here on an injected registry.

The DNS hot path bumps plain integers (see `querystats`); a custom collector
turns them into samples only when /metrics is scraped.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from fodns import querystats


class QueryCollector(Collector):
    """fodns_dns_queries_total{qtype,rcode} summed over every worker's counters."""

    def __init__(self, counter_sources: Callable[[], list[list[int]]]) -> None:
        self.counter_sources = counter_sources

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
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
        workers = GaugeMetricFamily("fodns_dns_workers", "DNS worker processes reporting")
        workers.add_metric([], len(sources))
        yield workers


def build_registry(counter_sources: Callable[[], list[list[int]]]) -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(QueryCollector(counter_sources))
    return registry
