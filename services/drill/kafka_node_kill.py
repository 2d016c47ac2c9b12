"""Experiment ``kafka-node-kill``: kill one Kafka node while the shop is busy.

Phases, each its own method: prepare (the cluster is whole, probes run and
are healthy), inject (write the fault to the ledger, kill the node), observe
(let the fault last), revert (start the node again, always), recover (time
until both probed flows are healthy), verify (every acknowledged probe event
was ingested) and report.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import math
import threading
import time
from collections.abc import Callable
from typing import Protocol

from drill.errors import (
    DrillError,
    DrillInterrupted,
    PreconditionError,
    RefusedError,
)
from drill.faults import ClusterControl, KafkaNodeKill, kafka_node_id
from drill.health import ClusterHealth, wait_until_whole
from drill.ingestion import IngestionCount, IngestionCounter
from drill.ledger import FaultLedger
from drill.metrics import DrillMetrics
from drill.plan import DrillPlan
from drill.probes import (
    Attempt,
    EventProbe,
    FlowRecord,
    RecommendProbe,
    recovered_at,
    within,
)
from drill.settings import DrillSettings
from drill.stats import percentile
from eventbus.contracts import DrillResult, DrillVerdict

logger = logging.getLogger(__name__)

EVENTS = "events"
REQUESTS = "requests"


class ProbeKit(Protocol):
    """Builds one drill's probes and its ingestion counter."""

    def event_probe(self, plan: DrillPlan, record: FlowRecord) -> EventProbe: ...

    def recommend_probe(
        self, plan: DrillPlan, record: FlowRecord
    ) -> RecommendProbe | None: ...

    def ingestion_counter(self, source: str) -> IngestionCounter: ...


@dataclasses.dataclass
class NodeKillRun:
    """What one run has done and measured so far."""

    plan: DrillPlan
    injector: KafkaNodeKill
    events: EventProbe
    requests: RecommendProbe | None
    ingestion: IngestionCounter
    baseline_started_at: float = math.nan
    fault_started_at: float = math.nan
    fault_ended_at: float = math.nan
    revert_seconds: float = math.nan
    recovery_seconds: dict[str, float | None] = dataclasses.field(default_factory=dict)
    cluster_whole_seconds: float | None = None
    events_unresolved: int = 0
    count: IngestionCount | None = None

    def records(self) -> list[FlowRecord]:
        probes: list[EventProbe | RecommendProbe | None] = [self.events, self.requests]
        return [probe.record for probe in probes if probe is not None]


class KafkaNodeKillExperiment:
    """Kills one node of the Kafka cluster and proves nothing acknowledged is lost."""

    name = "kafka-node-kill"

    def __init__(
        self,
        *,
        settings: DrillSettings,
        cluster: ClusterControl,
        health: ClusterHealth,
        ledger: FaultLedger,
        probes: ProbeKit,
        metrics: DrillMetrics,
        clock: Callable[[], float] = time.monotonic,
        stop: threading.Event | None = None,
        revert_backoff_seconds: float = 2.0,
    ) -> None:
        self._settings = settings
        self._cluster = cluster
        self._health = health
        self._ledger = ledger
        self._probes = probes
        self._metrics = metrics
        self._clock = clock
        self._stop = stop or threading.Event()
        self._revert_backoff_seconds = revert_backoff_seconds

    def run(self, plan: DrillPlan) -> DrillResult:
        run = self.prepare(plan)
        try:
            try:
                self.inject(run)
                self.observe(run)
            finally:
                self.revert(run)
            self.recover(run)
        finally:
            self.stop_probes(run)
        self.verify(run)
        return self.report(run)

    def prepare(self, plan: DrillPlan) -> NodeKillRun:
        """Check the cluster is whole, then start the probes and see them healthy."""
        injector = self._injector(plan.target)
        wait_until_whole(
            self._health,
            timeout_seconds=self._settings.prepare_timeout_seconds,
            clock=self._clock,
            sleep=self._pause,
        )
        run = self._start_probes(plan, injector)
        try:
            self._await_first_successes(run)
            run.baseline_started_at = self._clock()
            self._pause(self._settings.baseline_seconds)
        except DrillError:
            self.stop_probes(run)
            raise
        return run

    def inject(self, run: NodeKillRun) -> None:
        """Write the fault down, then kill the node."""
        injector = run.injector
        self._ledger.injecting(run.plan.drill_id, injector.fault, injector.target)
        self._metrics.fault_active.labels(self.name).set(1)
        logger.info("killing node", extra=_context(run))
        run.fault_started_at = self._clock()
        injector.inject()

    def observe(self, run: NodeKillRun) -> None:
        """Let the fault last its planned time while the probes keep working."""
        self._pause(run.plan.fault_seconds)

    def revert(self, run: NodeKillRun) -> None:
        """Start the node again and write down that the fault is out."""
        injector = run.injector
        started = self._clock()
        injector.revert()
        run.fault_ended_at = self._clock()
        run.revert_seconds = run.fault_ended_at - started
        self._ledger.reverted(run.plan.drill_id, injector.fault, injector.target)
        self._metrics.fault_active.labels(self.name).set(0)
        logger.info("node started again", extra=_context(run))

    def recover(self, run: NodeKillRun) -> None:
        """Time how long after the revert both flows were healthy again."""
        deadline = run.fault_ended_at + run.plan.max_recovery_seconds
        while True:
            run.recovery_seconds = {
                record.flow: self._recovery(record, run.fault_ended_at)
                for record in run.records()
            }
            recovered = None not in run.recovery_seconds.values()
            if recovered or self._clock() >= deadline:
                break
            self._pause(0.2)
        run.cluster_whole_seconds = self._cluster_whole_seconds(run)

    def stop_probes(self, run: NodeKillRun) -> None:
        """Stop both probes; wait a bounded time for outstanding acknowledgements."""
        if run.requests is not None:
            run.requests.stop()
        drain_seconds = self._settings.probe_drain_seconds
        run.events_unresolved = run.events.stop(drain_seconds=drain_seconds)

    def verify(self, run: NodeKillRun) -> None:
        """Wait, bounded, until ingest has written every acknowledged event."""
        run.count = run.ingestion.count(
            run.events.acknowledged_ids(),
            timeout_seconds=self._settings.ingest_wait_seconds,
        )

    def report(self, run: NodeKillRun) -> DrillResult:
        """The result: counts, recovery time, latencies and the verdict."""
        assert run.count is not None
        acknowledged = run.events.acknowledged_ids()
        lost = run.count.lost(acknowledged)
        requests = _attempts_since(run.requests, run.baseline_started_at)
        recovery = _slowest(run.recovery_seconds)
        verdict, summary = judge(
            lost=len(lost),
            recovery_seconds=recovery,
            max_recovery_seconds=run.plan.max_recovery_seconds,
        )
        figures = measurements(run)
        stall = figures.get("events_longest_gap_seconds")
        if stall is not None:
            summary += f"; writes stalled up to {stall:.1f}s after the kill"
        if lost:
            logger.error("acknowledged events lost", extra={"lost": sorted(lost)[:20]})
        self._metrics.recovery_seconds.labels(self.name).set(recovery or math.nan)
        return DrillResult(
            drill_id=run.plan.drill_id,
            experiment=self.name,
            target=run.plan.target,
            verdict=verdict,
            events_acknowledged=len(acknowledged),
            events_ingested=len(run.count.ingested_ids),
            events_lost=len(lost),
            events_duplicated=run.count.duplicates,
            requests_total=len(requests),
            requests_failed=sum(1 for attempt in requests if not attempt.ok),
            seconds_to_recover=-1.0 if recovery is None else recovery,
            measurements=figures,
            summary=summary,
        )

    def _injector(self, target: str) -> KafkaNodeKill:
        try:
            node_id = kafka_node_id(target)
        except ValueError as exc:
            raise RefusedError(str(exc)) from None
        if node_id not in self._cluster.listening_nodes():
            raise RefusedError(f"{target} is not a node of this cluster")
        return KafkaNodeKill(
            self._cluster, node_id, backoff_seconds=self._revert_backoff_seconds
        )

    def _start_probes(self, plan: DrillPlan, injector: KafkaNodeKill) -> NodeKillRun:
        events = self._probes.event_probe(plan, self._record(EVENTS))
        run = NodeKillRun(
            plan=plan,
            injector=injector,
            events=events,
            requests=self._probes.recommend_probe(plan, self._record(REQUESTS)),
            ingestion=self._probes.ingestion_counter(events.source),
        )
        run.ingestion.mark_start()
        events.start()
        if run.requests is not None:
            run.requests.start()
        return run

    def _await_first_successes(self, run: NodeKillRun) -> None:
        deadline = self._clock() + self._settings.prepare_timeout_seconds
        waiting = run.records()
        while waiting := [r for r in waiting if not any(a.ok for a in r.attempts())]:
            if self._clock() >= deadline:
                flows = ", ".join(record.flow for record in waiting)
                raise PreconditionError(f"no successful {flows} before the fault")
            self._pause(0.2)

    def _recovery(self, record: FlowRecord, since: float) -> float | None:
        streak = self._settings.healthy_streak
        at = recovered_at(record.attempts(), since=since, streak=streak)
        return None if at is None else max(0.0, at - since)

    def _cluster_whole_seconds(self, run: NodeKillRun) -> float | None:
        try:
            wait_until_whole(
                self._health,
                timeout_seconds=run.plan.max_recovery_seconds,
                clock=self._clock,
                sleep=self._pause,
            )
        except PreconditionError as exc:
            logger.warning("cluster not whole again: %s", exc, extra=_context(run))
            return None
        return self._clock() - run.fault_ended_at

    def _pause(self, seconds: float) -> None:
        """Wait, unless the service is stopping: then end the drill early.

        The revert still runs, from the ``finally`` around the fault.
        """
        if self._stop.wait(seconds):
            raise DrillInterrupted("the drill service is stopping")

    def _record(self, flow: str) -> FlowRecord:
        return FlowRecord(flow, observer=self._observe_attempt)

    def _observe_attempt(self, flow: str, attempt: Attempt) -> None:
        self._metrics.probe_attempts.labels(flow, attempt.outcome).inc()
        if attempt.ok:
            self._metrics.probe_latency_seconds.labels(flow).observe(
                attempt.latency_seconds
            )


def judge(
    *, lost: int, recovery_seconds: float | None, max_recovery_seconds: float
) -> tuple[DrillVerdict, str]:
    """PASSED when nothing acknowledged was lost and both flows recovered in time."""
    faults = []
    if lost:
        faults.append(f"{lost} acknowledged events were never ingested")
    if recovery_seconds is None:
        faults.append(
            f"flows not healthy within {max_recovery_seconds:g}s of the revert"
        )
    elif recovery_seconds > max_recovery_seconds:
        faults.append(f"flows took {recovery_seconds:.1f}s to recover")
    if faults:
        return DrillVerdict.DRILL_VERDICT_FAILED, "; ".join(faults)
    return (
        DrillVerdict.DRILL_VERDICT_PASSED,
        "no acknowledged event lost; flows recovered",
    )


def measurements(run: NodeKillRun) -> dict[str, float]:
    """Named figures beyond the result's fixed fields, in seconds unless named."""
    window = (run.fault_started_at, run.fault_ended_at)
    figures: dict[str, float | None] = {
        "node_down_seconds": window[1] - window[0],
        "revert_seconds": run.revert_seconds,
        "cluster_whole_seconds_after_revert": run.cluster_whole_seconds,
        "events_sent": float(run.events.sent),
        "events_unresolved": float(run.events_unresolved),
        "ingest_wait_seconds": run.count.waited_seconds if run.count else None,
    }
    for record in run.records():
        figures[f"{record.flow}_recovery_seconds"] = run.recovery_seconds.get(
            record.flow
        )
        figures.update(_flow_figures(record, run.baseline_started_at, window))
    return {name: value for name, value in figures.items() if value is not None}


def _flow_figures(
    record: FlowRecord, baseline_start: float, window: tuple[float, float]
) -> dict[str, float | None]:
    attempts = record.attempts()
    before = _latencies(record.flow, within(attempts, baseline_start, window[0]))
    during = within(attempts, *window)
    latencies = _latencies(record.flow, during)
    flow = record.flow
    return {
        f"{flow}_latency_p50_seconds_before_fault": percentile(before, 50),
        f"{flow}_latency_p50_seconds_during_fault": percentile(latencies, 50),
        f"{flow}_latency_p99_seconds_during_fault": percentile(latencies, 99),
        f"{flow}_failed_during_fault": float(sum(1 for a in during if not a.ok)),
        f"{flow}_longest_gap_seconds": longest_gap(attempts, since=window[0]),
    }


def _latencies(flow: str, attempts: list[Attempt]) -> list[float]:
    """Acknowledgement latencies of events; answer times of every request.

    A failed request took its time too (up to the deadline); a failed event
    has no acknowledgement to time.
    """
    return [a.latency_seconds for a in attempts if a.ok or flow == REQUESTS]


def _attempts_since(probe: RecommendProbe | None, start: float) -> list[Attempt]:
    if probe is None:
        return []
    return [a for a in probe.record.attempts() if a.started_at >= start]


def longest_gap(attempts: list[Attempt], *, since: float) -> float | None:
    """The longest time without a success from ``since`` on: how long a flow stalled."""
    finishes = [a.finished_at for a in attempts if a.ok and a.finished_at >= since]
    if not finishes:
        return None
    moments = [since, *sorted(finishes)]
    return max(later - earlier for earlier, later in itertools.pairwise(moments))


def _slowest(recovery: dict[str, float | None]) -> float | None:
    if not recovery or None in recovery.values():
        return None
    return max(value for value in recovery.values() if value is not None)


def _context(run: NodeKillRun) -> dict[str, object]:
    return {"drill_id": run.plan.drill_id, "target": run.plan.target}
