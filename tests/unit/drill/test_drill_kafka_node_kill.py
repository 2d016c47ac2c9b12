import dataclasses
import threading
import time
from collections.abc import Callable, Set
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from drill.errors import (
    DrillInterrupted,
    FaultError,
    PreconditionError,
    RefusedError,
    RevertError,
)
from drill.ingestion import IngestionCount
from drill.kafka_node_kill import KafkaNodeKillExperiment, judge, longest_gap
from drill.ledger import FaultLedger
from drill.metrics import DrillMetrics
from drill.plan import DrillPlan
from drill.probes import (
    Attempt,
    EventProbe,
    FlowRecord,
    ProbePurchase,
    RecommendProbe,
)
from drill.settings import DrillSettings
from eventbus.contracts import BehaviourEvent, DrillVerdict


class RecordingCluster:
    """A three-node cluster that notes each action and what the ledger held then."""

    def __init__(self, ledger: FaultLedger) -> None:
        self.ledger = ledger
        self.actions: list[tuple[str, int, list[str]]] = []
        self.kill_error: Exception | None = None
        self.on_kill: Callable[[], None] = lambda: None
        self.start_error: Exception | None = None

    def kill_node(self, node_id: int) -> None:
        self._note("kill", node_id)
        self.on_kill()
        if self.kill_error is not None:
            raise self.kill_error

    def start_node(self, node_id: int) -> None:
        self._note("start", node_id)
        if self.start_error is not None:
            raise self.start_error

    def listening_nodes(self) -> dict[int, bool]:
        return {0: True, 1: True, 2: True}

    def _note(self, action: str, node_id: int) -> None:
        open_targets = [fault.target for fault in self.ledger.open_faults()]
        self.actions.append((action, node_id, open_targets))


class Health:
    def __init__(self, fault: str | None = None) -> None:
        self.fault_text = fault

    def fault(self) -> str | None:
        return self.fault_text


class InstantSender:
    """Acknowledges every event on the next serve."""

    def __init__(self) -> None:
        self.pending: list[Callable[[str], None]] = []

    def send(self, event: BehaviourEvent, on_result: Callable[[str], None]) -> None:
        self.pending.append(on_result)

    def serve(self, timeout_seconds: float) -> None:
        while self.pending:
            self.pending.pop(0)("ok")
        time.sleep(timeout_seconds)

    def drain(self, timeout_seconds: float) -> int:
        self.serve(0)
        return 0


class Storefront:
    def __init__(self, cluster: RecordingCluster, *, broken_by_kill: bool) -> None:
        self.cluster = cluster
        self.broken_by_kill = broken_by_kill

    def recommend(self, user_id: str, k: int, deadline_seconds: float) -> str:
        killed = any(action == "kill" for action, _, _ in self.cluster.actions)
        return "UNAVAILABLE" if self.broken_by_kill and killed else "ok"

    def close(self) -> None:
        pass


class Ingest:
    """Ingests every expected event except those it is told to drop."""

    def __init__(self, drop: int = 0) -> None:
        self.drop = drop
        self.started = False

    def mark_start(self) -> None:
        self.started = True

    def count(self, expected: Set[str], *, timeout_seconds: float) -> IngestionCount:
        kept = sorted(expected)[self.drop :]
        return IngestionCount(
            ingested_ids=frozenset(kept), duplicates=0, waited_seconds=0.01
        )


class Kit:
    def __init__(
        self, cluster: RecordingCluster, ingest: Ingest, *, broken_by_kill: bool
    ) -> None:
        self.cluster = cluster
        self.ingest = ingest
        self.broken_by_kill = broken_by_kill

    def event_probe(self, plan: DrillPlan, record: FlowRecord) -> EventProbe:
        return EventProbe(
            sender=InstantSender(),
            drill_id=plan.drill_id,
            purchase=ProbePurchase(user_id="17850", item_id="85123A", price=2.55),
            events_per_second=plan.probe_events_per_second,
            record=record,
        )

    def recommend_probe(self, plan: DrillPlan, record: FlowRecord) -> RecommendProbe:
        return RecommendProbe(
            client=Storefront(self.cluster, broken_by_kill=self.broken_by_kill),
            user_ids=["17841"],
            k=10,
            deadline_seconds=1.0,
            requests_per_second=plan.requests_per_second,
            record=record,
        )

    def ingestion_counter(self, source: str) -> Ingest:
        return self.ingest


PLAN = DrillPlan(
    drill_id="d-1",
    experiment="kafka-node-kill",
    target="kafka-node-1",
    fault_seconds=0.3,
    probe_events_per_second=50,
    requests_per_second=50,
    max_recovery_seconds=1.0,
)


class Drill:
    """The experiment over fakes, and the fakes to inspect afterwards."""

    def __init__(
        self,
        tmp_path: Path,
        *,
        health: Health | None = None,
        ingest: Ingest | None = None,
        broken_by_kill: bool = False,
        prepare_timeout_seconds: float = 2.0,
    ) -> None:
        self.stop = threading.Event()
        self.ledger = FaultLedger(tmp_path / "faults.jsonl")
        self.cluster = RecordingCluster(self.ledger)
        self.ingest = ingest or Ingest()
        settings = DrillSettings(
            baseline_seconds=0.1,
            prepare_timeout_seconds=prepare_timeout_seconds,
            probe_drain_seconds=1,
            ingest_wait_seconds=1,
        )
        self.experiment = KafkaNodeKillExperiment(
            settings=settings,
            cluster=self.cluster,
            health=health or Health(),
            ledger=self.ledger,
            probes=Kit(self.cluster, self.ingest, broken_by_kill=broken_by_kill),
            metrics=DrillMetrics(CollectorRegistry()),
            stop=self.stop,
            revert_backoff_seconds=0.01,
        )


def test_the_fault_is_in_the_ledger_before_the_node_is_killed(tmp_path: Path) -> None:
    drill = Drill(tmp_path)

    drill.experiment.run(PLAN)

    assert drill.cluster.actions[0] == ("kill", 1, ["kafka-node-1"])
    assert drill.cluster.actions[-1][:2] == ("start", 1)
    assert drill.ledger.open_faults() == []


def test_a_drill_stopped_during_the_fault_still_starts_the_node_again(
    tmp_path: Path,
) -> None:
    drill = Drill(tmp_path)
    drill.cluster.on_kill = drill.stop.set  # SIGTERM arrives mid-fault
    started = time.monotonic()

    with pytest.raises(DrillInterrupted):
        drill.experiment.run(dataclasses.replace(PLAN, fault_seconds=60))

    assert [action for action, _, _ in drill.cluster.actions] == ["kill", "start"]
    assert drill.ledger.open_faults() == []
    assert time.monotonic() - started < 10


def test_a_kill_that_fails_half_way_is_reverted_all_the_same(tmp_path: Path) -> None:
    drill = Drill(tmp_path)
    drill.cluster.kill_error = FaultError("kill-node exited 1")

    with pytest.raises(FaultError, match="kill-node"):
        drill.experiment.run(PLAN)

    assert [action for action, _, _ in drill.cluster.actions] == ["kill", "start"]
    assert drill.ledger.open_faults() == []


def test_a_revert_that_fails_leaves_the_fault_open_in_the_ledger(
    tmp_path: Path,
) -> None:
    drill = Drill(tmp_path)
    drill.cluster.start_error = FaultError("node exited during start")

    with pytest.raises(RevertError):
        drill.experiment.run(PLAN)

    assert [fault.target for fault in drill.ledger.open_faults()] == ["kafka-node-1"]


def test_a_drill_passes_when_every_acknowledged_event_was_ingested(
    tmp_path: Path,
) -> None:
    drill = Drill(tmp_path)

    result = drill.experiment.run(PLAN)

    assert result.verdict == DrillVerdict.DRILL_VERDICT_PASSED
    assert result.events_acknowledged > 10
    assert result.events_ingested == result.events_acknowledged
    assert (result.events_lost, result.requests_failed) == (0, 0)
    assert result.requests_total > 10
    assert 0 <= result.seconds_to_recover < PLAN.max_recovery_seconds
    assert result.measurements["node_down_seconds"] >= PLAN.fault_seconds
    assert "requests_latency_p99_seconds_during_fault" in result.measurements


def test_one_lost_acknowledged_event_fails_the_drill(tmp_path: Path) -> None:
    drill = Drill(tmp_path, ingest=Ingest(drop=1))

    result = drill.experiment.run(PLAN)

    assert result.verdict == DrillVerdict.DRILL_VERDICT_FAILED
    assert result.events_lost == 1
    assert "1 acknowledged events were never ingested" in result.summary


def test_a_flow_that_never_recovers_fails_the_drill(tmp_path: Path) -> None:
    drill = Drill(tmp_path, broken_by_kill=True)

    result = drill.experiment.run(PLAN)

    assert result.verdict == DrillVerdict.DRILL_VERDICT_FAILED
    assert result.seconds_to_recover == -1
    assert result.requests_failed > 0
    assert "requests_recovery_seconds" not in result.measurements


def test_no_fault_is_injected_into_a_cluster_that_is_not_whole(tmp_path: Path) -> None:
    drill = Drill(
        tmp_path,
        health=Health("nodes [2] are not listening"),
        prepare_timeout_seconds=0.2,
    )

    with pytest.raises(PreconditionError, match="nodes \\[2\\]"):
        drill.experiment.run(PLAN)

    assert drill.cluster.actions == []
    assert drill.ledger.entries() == []


def test_a_target_outside_the_cluster_is_refused(tmp_path: Path) -> None:
    drill = Drill(tmp_path)
    plan = dataclasses.replace(PLAN, target="kafka-node-7")

    with pytest.raises(RefusedError):
        drill.experiment.run(plan)

    assert drill.cluster.actions == []


def test_the_verdict_needs_no_loss_and_recovery_within_the_limit() -> None:
    assert judge(lost=0, recovery_seconds=2.0, max_recovery_seconds=60)[0] == (
        DrillVerdict.DRILL_VERDICT_PASSED
    )
    assert judge(lost=0, recovery_seconds=61.0, max_recovery_seconds=60)[0] == (
        DrillVerdict.DRILL_VERDICT_FAILED
    )
    assert judge(lost=0, recovery_seconds=None, max_recovery_seconds=60)[0] == (
        DrillVerdict.DRILL_VERDICT_FAILED
    )


def test_the_longest_gap_counts_from_the_fault_to_the_first_success() -> None:
    attempts = [
        Attempt(started_at=t, finished_at=t + lag, outcome="ok")
        for t, lag in [(9.0, 0.1), (10.0, 4.0), (10.1, 3.95), (14.2, 0.1)]
    ]

    assert longest_gap(attempts, since=10.0) == pytest.approx(4.0)
