from pathlib import Path

from drill.ledger import FaultLedger


def test_an_injected_fault_stays_open_until_reverted(tmp_path: Path) -> None:
    ledger = FaultLedger(tmp_path / "faults.jsonl")

    ledger.injecting("d1", "kafka-node-kill", "kafka-node-1")
    open_before = ledger.open_faults()
    ledger.reverted("d1", "kafka-node-kill", "kafka-node-1")

    assert [(f.drill_id, f.target) for f in open_before] == [("d1", "kafka-node-1")]
    assert ledger.open_faults() == []


def test_open_faults_survive_a_restart_of_the_service(tmp_path: Path) -> None:
    path = tmp_path / "drills" / "faults.jsonl"
    FaultLedger(path).injecting("d1", "kafka-node-kill", "kafka-node-2")
    FaultLedger(path).injecting("d2", "kafka-node-kill", "kafka-node-0")
    FaultLedger(path).reverted("d2", "kafka-node-kill", "kafka-node-0")

    reopened = FaultLedger(path)

    assert [f.target for f in reopened.open_faults()] == ["kafka-node-2"]
    assert [e.action for e in reopened.entries()] == ["injecting"] * 2 + ["reverted"]


def test_a_missing_ledger_has_no_open_faults(tmp_path: Path) -> None:
    assert FaultLedger(tmp_path / "none.jsonl").open_faults() == []
