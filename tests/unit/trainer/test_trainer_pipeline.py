import dataclasses
import logging
import math
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import torch
from prometheus_client import CollectorRegistry
from trainer_snapshots import TINY_CONFIG, successor_snapshot
from trainer_versions import ITEM_IDS, MAX_LEN, write_version

from eventbus.contracts import Alert, ModelReady
from eventbus.snapshots import SNAPSHOT_SCHEMA as SCHEMA
from trainer import pipeline
from trainer.artifact import (
    MODEL_NAME,
    code_version,
    file_digest,
    list_versions,
    load_model_uri,
    load_model_version,
)
from trainer.errors import ArtifactError, PublishError, SnapshotError
from trainer.evaluation import Candidates
from trainer.metrics import TrainerMetrics
from trainer.model import SequentialRecommender, to_torchscript
from trainer.pipeline import (
    CatalogueBridge,
    ModelRefusedError,
    TrainingReport,
    run_training,
)
from trainer.publish import REFUSAL_RULE
from trainer.registry import read_serving, store_for
from trainer.sequences import ItemCatalogue, left_pad
from trainer.settings import TrainerSettings

# Barely trained: one epoch at a learning rate too small to move the weights.
UNTRAINED = dataclasses.replace(
    TINY_CONFIG, max_epochs=1, hidden_size=8, learning_rate=1e-7
)


class RecordingPublisher:
    def __init__(self) -> None:
        self.events: list[ModelReady] = []

    def publish(self, event: ModelReady) -> None:
        self.events.append(event)


class RecordingAlerts:
    def __init__(self) -> None:
        self.alerts: list[Alert] = []

    def publish(self, alert: Alert) -> None:
        self.alerts.append(alert)


class RefusingPublisher:
    def publish(self, event: ModelReady) -> None:
        raise PublishError("no in-sync replicas")


def settings(state_dir: Path, **changes: object) -> TrainerSettings:
    base = TrainerSettings(state_dir=state_dir, metrics_port=-1, training=TINY_CONFIG)
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def serving_version(config: TrainerSettings) -> str | None:
    pointer = read_serving(store_for(config), MODEL_NAME)
    return None if pointer is None else pointer.version


def accepted_run(config: TrainerSettings, snapshot: Path) -> TrainingReport:
    return run_training(
        config,
        snapshot,
        RecordingPublisher(),
        TrainerMetrics(CollectorRegistry()),
        alerts=RecordingAlerts(),
    )


def test_a_first_run_is_accepted_stored_announced_and_served(tmp_path: Path) -> None:
    snapshot = successor_snapshot(tmp_path / "snapshots" / "s1")
    config = settings(tmp_path)
    publisher = RecordingPublisher()
    alerts = RecordingAlerts()
    registry = CollectorRegistry()

    report = run_training(
        config, snapshot, publisher, TrainerMetrics(registry), alerts=alerts
    )

    [event] = publisher.events
    [version_dir] = list_versions(config.registry_dir)
    assert report.accepted
    assert report.published
    assert report.decision.serving_version is None
    assert "serving" not in report.quality
    assert event.version == version_dir.name == report.stored.manifest.version
    assert serving_version(config) == event.version
    assert (event.sha256, event.size_bytes) == file_digest(version_dir / "model.pt")
    assert event.snapshot_id == "s1"
    assert report.stored.manifest.code_version == code_version()
    assert not alerts.alerts
    assert registry.get_sample_value("recops_trainer_models_published_total") == 1.0
    assert registry.get_sample_value("recops_trainer_models_refused_total") == 0.0
    loaded = load_model_uri(event.artifact_uri, expected_sha256=event.sha256)
    assert loaded.metadata.popular_items[0] == 1
    assert loaded.metadata.max_len == TINY_CONFIG.history_len
    assert list((config.tensorboard_dir / event.version).glob("events.out.*"))


def test_model_ready_carries_the_model_and_baseline_metrics_both_ways(
    tmp_path: Path,
) -> None:
    snapshot = successor_snapshot(tmp_path / "snapshots" / "s1")
    publisher = RecordingPublisher()
    registry = CollectorRegistry()

    report = run_training(
        settings(tmp_path), snapshot, publisher, TrainerMetrics(registry)
    )

    metrics = publisher.events[0].metrics
    model = report.quality["model"]
    repeat = report.quality["repeat"]
    assert metrics["ndcg@10"] == model[Candidates.REPEATS].at[10].ndcg
    assert metrics["ndcg@20"] == model[Candidates.REPEATS].at[20].ndcg
    assert metrics["new_items.ndcg@10"] == model[Candidates.NEW_ITEMS].at[10].ndcg
    assert metrics["baseline.repeat.ndcg@10"] == repeat[Candidates.REPEATS].at[10].ndcg
    for baseline in ("popularity", "recent_popularity", "co_occurrence"):
        assert f"baseline.{baseline}.new_items.coverage@20" in metrics
    assert metrics["test_customers"] == 120.0
    # Each successor follows from the last purchase; popularity cannot see it.
    assert metrics["ndcg@10"] > metrics["baseline.popularity.ndcg@10"]
    gauge = registry.get_sample_value(
        "recops_trainer_test_quality",
        {"recommender": "repeat", "candidates": "new_items", "metric": "ndcg@10"},
    )
    assert gauge == repeat[Candidates.NEW_ITEMS].at[10].ndcg


def test_without_a_publisher_the_version_is_kept_but_not_served(
    tmp_path: Path,
) -> None:
    snapshot = successor_snapshot(tmp_path / "snapshots" / "s1")
    config = settings(tmp_path)

    report = run_training(config, snapshot, None, TrainerMetrics(CollectorRegistry()))

    assert report.accepted
    assert not report.published
    assert list_versions(config.registry_dir) == [report.stored.directory]
    assert serving_version(config) is None


def test_a_candidate_worse_than_the_serving_model_is_refused_and_kept_aside(
    tmp_path: Path,
) -> None:
    snapshot = successor_snapshot(tmp_path / "snapshots" / "s1")
    served = accepted_run(settings(tmp_path), snapshot)
    config = settings(tmp_path, training=UNTRAINED)
    publisher = RecordingPublisher()
    alerts = RecordingAlerts()
    registry = CollectorRegistry()

    with pytest.raises(ModelRefusedError) as refused:
        run_training(
            config, snapshot, publisher, TrainerMetrics(registry), alerts=alerts
        )

    report = refused.value.report
    version = report.stored.manifest.version
    serving_quality = report.quality["serving"][Candidates.REPEATS].at[10]
    assert not report.accepted
    assert report.decision.serving_version == served.stored.manifest.version
    assert report.decision.serving_value == serving_quality.ndcg
    assert report.decision.candidate_value is not None
    assert report.decision.candidate_value < serving_quality.ndcg
    assert any("ndcg@10" in reason for reason in report.decision.reasons)
    [alert] = alerts.alerts
    assert alert.rule == REFUSAL_RULE
    assert alert.labels["model_version"] == version
    assert alert.labels["serving_version"] == served.stored.manifest.version
    assert registry.get_sample_value("recops_trainer_models_refused_total") == 1.0
    assert registry.get_sample_value("recops_trainer_models_published_total") == 0.0
    assert not publisher.events
    assert list_versions(config.refused_dir) == [
        config.refused_dir / MODEL_NAME / version
    ]
    assert list_versions(config.registry_dir) == [served.stored.directory]
    assert serving_version(config) == served.stored.manifest.version
    assert str(config.refused_dir) in str(refused.value)


def test_a_refusal_without_an_alert_publisher_is_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    snapshot = successor_snapshot(tmp_path / "snapshots" / "s1")
    accepted_run(settings(tmp_path), snapshot)
    config = settings(tmp_path, training=UNTRAINED)
    registry = CollectorRegistry()

    with (
        caplog.at_level(logging.ERROR, logger="trainer.pipeline"),
        pytest.raises(ModelRefusedError) as refused,
    ):
        run_training(config, snapshot, RecordingPublisher(), TrainerMetrics(registry))

    version = refused.value.report.stored.manifest.version
    assert any(version in record.getMessage() for record in caplog.records)
    assert registry.get_sample_value("recops_trainer_models_refused_total") == 1.0


def poisoned(model: SequentialRecommender) -> torch.jit.ScriptModule:
    """The export of ``model`` after one product's bias became NaN."""
    with torch.no_grad():
        model.item_bias[3] = math.nan
    return to_torchscript(model)


def test_a_candidate_with_nan_scores_is_refused_for_its_non_finite_scores(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    snapshot = successor_snapshot(tmp_path / "snapshots" / "s1")
    config = settings(tmp_path)
    alerts = RecordingAlerts()
    monkeypatch.setattr(pipeline, "to_torchscript", poisoned)

    with pytest.raises(ModelRefusedError) as refused:
        run_training(
            config,
            snapshot,
            RecordingPublisher(),
            TrainerMetrics(CollectorRegistry()),
            alerts=alerts,
        )

    reasons = refused.value.report.decision.reasons
    assert reasons
    assert all("validation scores are not finite" in reason for reason in reasons)
    assert "not finite" in alerts.alerts[0].summary
    assert list_versions(config.registry_dir) == []
    assert serving_version(config) is None


def test_a_broken_serving_version_does_not_block_a_good_candidate(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    snapshot = successor_snapshot(tmp_path / "snapshots" / "s1")
    config = settings(tmp_path)
    broken = accepted_run(config, snapshot)
    model_file = broken.stored.model_path
    model_file.write_bytes(model_file.read_bytes()[:100])

    with caplog.at_level(logging.ERROR, logger="trainer.pipeline"):
        report = accepted_run(config, snapshot)

    assert report.accepted
    assert report.decision.serving_version is None
    assert "serving" not in report.quality
    assert serving_version(config) == report.stored.manifest.version
    assert any("cannot be loaded" in r.getMessage() for r in caplog.records)


def test_a_registry_out_of_reach_fails_the_run_retriably_rather_than_skip_the_gate(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    snapshot = successor_snapshot(tmp_path / "snapshots" / "s1")
    config = settings(tmp_path)
    served = accepted_run(config, snapshot)

    def unreachable(*args: object) -> None:
        raise ArtifactError("cannot read SERVING: endpoint timed out", retriable=True)

    monkeypatch.setattr(pipeline, "load_serving_model", unreachable)

    with pytest.raises(ArtifactError) as raised:
        accepted_run(config, snapshot)

    assert raised.value.retriable
    assert [v.name for v in list_versions(config.registry_dir)] == [
        served.stored.manifest.version
    ]
    assert serving_version(config) == served.stored.manifest.version


def test_the_serving_model_scores_the_same_products_in_another_catalogue_order(
    tmp_path: Path,
) -> None:
    stored = write_version(tmp_path / "registry", "20261203T190102Z-00000001")
    loaded = load_model_version(stored.directory)
    # The same products renumbered, and one the serving model never saw.
    reordered = ["", ITEM_IDS[4], "NEW1", ITEM_IDS[1], ITEM_IDS[5], *ITEM_IDS[2:4]]
    catalogue = ItemCatalogue(
        item_ids=reordered,
        item_descriptions=reordered,
        purchase_counts=[0, *range(len(reordered) - 1, 0, -1)],
        index={item_id: n for n, item_id in enumerate(reordered) if item_id},
    )
    bridge = CatalogueBridge(loaded, catalogue)
    bought = [ITEM_IDS[2], ITEM_IDS[5], ITEM_IDS[1]]

    history = [catalogue.index[i] for i in bought]
    with_unknown = [catalogue.index["NEW1"], *history]
    scores = bridge.scores([history, with_unknown])

    served = [ITEM_IDS.index(i) for i in bought]
    expected = loaded.scores(torch.tensor([left_pad(served, MAX_LEN)]))[0]
    for item_id in ITEM_IDS[1:]:
        column = catalogue.index[item_id]
        assert scores[0, column] == expected[ITEM_IDS.index(item_id)]
    assert torch.equal(scores[0], scores[1])
    assert scores[0, catalogue.index["NEW1"]] == -math.inf
    assert scores[0, 0] == -math.inf


def test_an_unacknowledged_announcement_fails_retriably_and_is_counted(
    tmp_path: Path,
) -> None:
    snapshot = successor_snapshot(tmp_path / "snapshots" / "s1")
    registry = CollectorRegistry()

    with pytest.raises(PublishError) as failed:
        run_training(
            settings(tmp_path), snapshot, RefusingPublisher(), TrainerMetrics(registry)
        )

    assert failed.value.retriable
    assert registry.get_sample_value("recops_trainer_publish_failures_total") == 1.0
    assert serving_version(settings(tmp_path)) is None


def test_a_snapshot_with_nothing_to_judge_on_is_refused_before_training(
    tmp_path: Path,
) -> None:
    snapshot = successor_snapshot(tmp_path / "snapshots" / "s1")
    (snapshot / "test.parquet").unlink()
    pq.write_table(SCHEMA.empty_table(), snapshot / "test.parquet")
    config = settings(tmp_path)

    with pytest.raises(SnapshotError, match="test split"):
        accepted_run(config, snapshot)

    assert list_versions(config.registry_dir) == []
    assert serving_version(config) is None
