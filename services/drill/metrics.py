"""The drill service's Prometheus metrics, registered on a registry passed in."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class DrillMetrics:
    """Every metric the drill service exposes."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.drills = Counter(
            "recops_drill_drills",
            "Drills finished, by experiment and verdict.",
            ["experiment", "verdict"],
            registry=registry,
        )
        self.drill_duration_seconds = Histogram(
            "recops_drill_drill_duration_seconds",
            "Time from a drill's command to its result.",
            ["experiment"],
            buckets=(10, 20, 30, 45, 60, 90, 120, 180, 300, 600),
            registry=registry,
        )
        self.fault_active = Gauge(
            "recops_drill_fault_active",
            "1 while a drill's fault is injected, else 0.",
            ["experiment"],
            registry=registry,
        )
        self.recovery_seconds = Gauge(
            "recops_drill_recovery_seconds",
            "Seconds the probed flows needed to be healthy after the last revert.",
            ["experiment"],
            registry=registry,
        )
        self.probe_attempts = Counter(
            "recops_drill_probe_attempts",
            "Probe attempts by flow (events, requests) and outcome.",
            ["flow", "outcome"],
            registry=registry,
        )
        self.probe_latency_seconds = Histogram(
            "recops_drill_probe_latency_seconds",
            "Time from a probe attempt to its acknowledgement or answer.",
            ["flow"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
