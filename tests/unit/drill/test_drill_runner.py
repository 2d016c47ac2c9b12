from pathlib import Path

from prometheus_client import CollectorRegistry

from drill.errors import PreconditionError
from drill.ledger import FaultLedger
from drill.metrics import DrillMetrics
from drill.plan import DrillPlan
from drill.runner import DrillRunner, revert_open_faults
from drill.settings import DrillSettings
from eventbus.contracts import DrillCommand, DrillResult, DrillVerdict


class ScriptedExperiment:
    name = "kafka-node-kill"

    def __init__(self, outcome: DrillResult | Exception) -> None:
        self.outcome = outcome
        self.plans: list[DrillPlan] = []

    def run(self, plan: DrillPlan) -> DrillResult:
        self.plans.append(plan)
        if isinstance(self.outcome, Exception):
            raise self.outcome
        return self.outcome


def runner_for(
    experiment: ScriptedExperiment, tmp_path: Path
) -> tuple[DrillRunner, CollectorRegistry]:
    registry = CollectorRegistry()
    runner = DrillRunner(
        settings=DrillSettings(reports_dir=tmp_path),
        experiments={experiment.name: experiment},
        metrics=DrillMetrics(registry),
    )
    return runner, registry


def command(experiment: str = "kafka-node-kill") -> DrillCommand:
    return DrillCommand(drill_id="d-1", experiment=experiment, target="kafka-node-1")


def test_an_unknown_experiment_is_refused_with_a_report(tmp_path: Path) -> None:
    runner, registry = runner_for(ScriptedExperiment(DrillResult()), tmp_path)

    result = runner.run(command("datacenter-flood"))

    assert result.verdict == DrillVerdict.DRILL_VERDICT_REFUSED
    assert "unknown experiment 'datacenter-flood'" in result.summary
    assert (tmp_path / "d-1.md").exists()
    labels = {"experiment": "unknown", "verdict": "refused"}
    assert registry.get_sample_value("recops_drill_drills_total", labels) == 1


def test_a_drill_that_cannot_start_is_aborted_and_still_answered(
    tmp_path: Path,
) -> None:
    experiment = ScriptedExperiment(PreconditionError("cluster not whole"))
    runner, _ = runner_for(experiment, tmp_path)

    result = runner.run(command())

    assert result.verdict == DrillVerdict.DRILL_VERDICT_ABORTED
    assert result.summary == "aborted: cluster not whole"
    assert (result.drill_id, result.target) == ("d-1", "kafka-node-1")
    assert result.HasField("started_at") and result.HasField("finished_at")


def test_an_unexpected_error_aborts_the_drill_instead_of_the_service(
    tmp_path: Path,
) -> None:
    runner, _ = runner_for(ScriptedExperiment(ZeroDivisionError("oops")), tmp_path)

    result = runner.run(command())

    assert result.verdict == DrillVerdict.DRILL_VERDICT_ABORTED
    assert "ZeroDivisionError" in result.summary


def test_a_finished_drill_gets_its_report_and_timestamps(tmp_path: Path) -> None:
    passed = DrillResult(verdict=DrillVerdict.DRILL_VERDICT_PASSED, summary="fine")
    runner, _ = runner_for(ScriptedExperiment(passed), tmp_path)

    result = runner.run(command())

    assert result.report_uri == (tmp_path / "d-1.json").resolve().as_uri()
    assert result.finished_at.ToDatetime() >= result.started_at.ToDatetime()


class StartingCluster:
    def __init__(self) -> None:
        self.started: list[int] = []

    def kill_node(self, node_id: int) -> None:
        raise AssertionError("nothing should be killed")

    def start_node(self, node_id: int) -> None:
        self.started.append(node_id)

    def listening_nodes(self) -> dict[int, bool]:
        return {}


def test_faults_left_open_by_a_crash_are_reverted_at_start(tmp_path: Path) -> None:
    ledger = FaultLedger(tmp_path / "faults.jsonl")
    ledger.injecting("d-1", "kafka-node-kill", "kafka-node-2")
    ledger.injecting("d-2", "kafka-node-kill", "kafka-node-0")
    ledger.reverted("d-2", "kafka-node-kill", "kafka-node-0")
    cluster = StartingCluster()

    reverted = revert_open_faults(ledger, cluster)

    assert (reverted, cluster.started) == (1, [2])
    assert ledger.open_faults() == []
