"""The ingest service's Prometheus metrics, registered on a given registry."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

BATCH_SECONDS_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class IngestMetrics:
    """Counts of what ingest consumed, accepted and refused, and batch timings."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.events_consumed = Counter(
            "recops_ingest_events_consumed_total",
            "Behaviour-event records read from the raw topic.",
            registry=registry,
        )
        self.events_accepted = Counter(
            "recops_ingest_events_accepted_total",
            "Events forwarded to the ingested topic, by item kind.",
            ["item_kind"],
            registry=registry,
        )
        self.events_dead_lettered = Counter(
            "recops_ingest_events_dead_lettered_total",
            "Records refused and sent to the dead-letter topic, by reason.",
            ["reason"],
            registry=registry,
        )
        self.events_classified = Counter(
            "recops_ingest_events_classified_total",
            "Accepted events carrying a real-data oddity, by kind.",
            ["kind"],
            registry=registry,
        )
        self.batch_seconds = Histogram(
            "recops_ingest_batch_seconds",
            "Time to process one batch and commit its transaction.",
            buckets=BATCH_SECONDS_BUCKETS,
            registry=registry,
        )
        self.batch_events = Histogram(
            "recops_ingest_batch_events",
            "Records in one batch.",
            buckets=(1, 10, 100, 500, 1000, 2500, 5000, 10_000),
            registry=registry,
        )
        self.transactions_aborted = Counter(
            "recops_ingest_transactions_aborted_total",
            "Transactions aborted and their batch read again.",
            registry=registry,
        )
