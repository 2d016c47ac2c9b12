"""The monitor's Prometheus metrics, registered on a registry passed in."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class MonitorMetrics:
    """Every metric the monitor exposes."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.consumer_lag_events = Gauge(
            "recops_monitor_consumer_lag_events",
            "Records a consumer group has yet to commit, per partition.",
            ["group", "topic", "partition"],
            registry=registry,
        )
        self.consumer_group_lag_events = Gauge(
            "recops_monitor_consumer_group_lag_events",
            "Records a consumer group has yet to commit, over all partitions.",
            ["group", "topic"],
            registry=registry,
        )
        self.alert_firing = Gauge(
            "recops_monitor_alert_firing",
            "1 while a rule's alert is firing, else 0.",
            ["rule"],
            registry=registry,
        )
        self.alerts_published = Counter(
            "recops_monitor_alerts_published",
            "Alerts acknowledged by the cluster, by rule and state.",
            ["rule", "state"],
            registry=registry,
        )
        self.evaluation_errors = Counter(
            "recops_monitor_evaluation_errors",
            "Evaluations that could not read their input or publish their alert.",
            ["rule", "reason"],
            registry=registry,
        )
        self.evaluation_duration_seconds = Histogram(
            "recops_monitor_evaluation_duration_seconds",
            "Time one evaluation of a rule took, reads included.",
            ["rule"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
            registry=registry,
        )
