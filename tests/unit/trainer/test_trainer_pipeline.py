from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from trainer_snapshots import TINY_CONFIG, successor_snapshot

from eventbus.contracts import ModelReady
from trainer.artifact import file_digest, list_versions, load_model_uri
from trainer.errors import PublishError
from trainer.metrics import TrainerMetrics
from trainer.pipeline import run_training
from trainer.settings import TrainerSettings


class RecordingPublisher:
    def __init__(self) -> None:
        self.events: list[ModelReady] = []

    def publish(self, event: ModelReady) -> None:
        self.events.append(event)


class RefusingPublisher:
    def publish(self, event: ModelReady) -> None:
        raise PublishError("no in-sync replicas")


def settings(state_dir: Path) -> TrainerSettings:
    return TrainerSettings(state_dir=state_dir, metrics_port=-1, training=TINY_CONFIG)


def test_a_run_stores_a_version_and_announces_exactly_it(tmp_path: Path) -> None:
    snapshot = successor_snapshot(tmp_path / "snapshots" / "s1")
    publisher = RecordingPublisher()
    registry = CollectorRegistry()

    report = run_training(
        settings(tmp_path), snapshot, publisher, TrainerMetrics(registry)
    )

    [event] = publisher.events
    [version_dir] = list_versions(tmp_path / "registry")
    assert event.version == version_dir.name == report.stored.manifest.version
    assert (event.sha256, event.size_bytes) == file_digest(version_dir / "model.pt")
    assert event.snapshot_id == "s1"
    assert event.metrics["ndcg@10"] == report.quality["model"].ndcg
    assert "baseline_popularity.ndcg@10" in event.metrics
    assert report.quality["model"].ndcg > report.quality["baseline_popularity"].ndcg
    loaded = load_model_uri(event.artifact_uri, expected_sha256=event.sha256)
    assert loaded.metadata.popular_items[0] == 1
    assert registry.get_sample_value("recops_trainer_models_published_total") == 1.0


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
