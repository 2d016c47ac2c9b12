"""The ingest service's Prometheus metrics, registered on a given registry."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

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
        self.producers_replaced = Counter(
            "recops_ingest_producers_replaced_total",
            "Transactional producers replaced because a call never returned.",
            registry=registry,
        )
        self.events_duplicate = Counter(
            "recops_ingest_events_duplicate_total",
            "Resends of events already ingested, absorbed.",
            registry=registry,
        )
        self.events_forwarded = Counter(
            "recops_ingest_events_forwarded_total",
            "Events that arrived on another partition than their shopper's and "
            "were forwarded there.",
            registry=registry,
        )
        self.restore_seconds = Histogram(
            "recops_ingest_profile_restore_seconds",
            "Time to restore newly assigned partitions' profiles from the changelog.",
            buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0),
            registry=registry,
        )
        self.partitions_refused = Gauge(
            "recops_ingest_partitions_refused",
            "Assigned partitions paused because their restored profiles disagree "
            "with the committed checkpoint.",
            registry=registry,
        )
        self.consumer_lag = Gauge(
            "recops_ingest_consumer_lag_events",
            "Events on the owned raw partitions not yet consumed.",
            registry=registry,
        )
        self.ready = Gauge(
            "recops_ingest_ready",
            "1 while ingest is ready: partitions assigned and checked, not stalled.",
            registry=registry,
        )
        self.transactions_aborted = Counter(
            "recops_ingest_transactions_aborted_total",
            "Transactions aborted and their batch read again.",
            registry=registry,
        )
