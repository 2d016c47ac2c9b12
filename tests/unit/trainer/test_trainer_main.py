import json
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from trainer_snapshots import TINY_CONFIG, successor_snapshot

from trainer import __main__ as cli
from trainer.metrics import TrainerMetrics
from trainer.pipeline import run_training
from trainer.registry import read_serving, store_for
from trainer.settings import TrainerSettings


class RecordingPublisher:
    def publish(self, event: object) -> None:
        pass


def tiny_flags(**changes: int | float) -> list[str]:
    """Command-line hyperparameters: the tiny test config, with ``changes``."""
    values = {**TINY_CONFIG.as_dict(), **changes}
    return [f"--{name.replace('_', '-')}={value}" for name, value in values.items()]


@pytest.fixture
def state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("RECOPS_STATE_DIR", str(tmp_path))
    monkeypatch.setenv("RECOPS_TRAINER_METRICS_PORT", "-1")
    # The entry point sends every log record to stderr as JSON; not here.
    monkeypatch.setattr(cli, "configure_logging", lambda *args: None)
    return tmp_path


def test_an_accepted_run_prints_every_table_and_a_json_summary_last(
    state_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    snapshot = successor_snapshot(state_dir / "snapshots" / "s1")

    status = cli.main(
        ["train", f"--snapshot={snapshot}", "--no-publish", *tiny_flags()]
    )

    lines = capsys.readouterr().out.splitlines()
    summary = json.loads(lines[-1])
    assert status == 0
    assert summary["accepted"] is True
    assert summary["published"] is False
    assert {"ndcg@10", "new_items.ndcg@20"} <= summary["metrics"].keys()
    for title in ("repeats allowed, K = 10", "new items only"):
        assert any(line.startswith(title) for line in lines)
    assert any(line.startswith("new items only") and "K = 20" in line for line in lines)
    assert any(line.startswith("quality gate: accepted") for line in lines)


def test_a_refused_run_exits_3_and_says_why(
    state_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    snapshot = successor_snapshot(state_dir / "snapshots" / "s1")
    settings = TrainerSettings(state_dir=state_dir, training=TINY_CONFIG)
    run_training(
        settings, snapshot, RecordingPublisher(), TrainerMetrics(CollectorRegistry())
    )
    serving = read_serving(store_for(settings), "sequential-recommender")
    capsys.readouterr()

    untrained = tiny_flags(max_epochs=1, hidden_size=8, learning_rate=1e-7)
    status = cli.main(["train", f"--snapshot={snapshot}", "--no-publish", *untrained])

    lines = capsys.readouterr().out.splitlines()
    summary = json.loads(lines[-1])
    assert status == cli.EXIT_REFUSED == 3
    assert summary["accepted"] is False
    assert summary["gate"]["reasons"]
    assert any(line.startswith("quality gate: REFUSED") for line in lines)
    # The serving model has a row of its own in the tables.
    assert any(line.startswith("serving ") for line in lines)
    assert read_serving(store_for(settings), "sequential-recommender") == serving
