"""One training run, as named steps: read, train, evaluate, store, announce."""

from __future__ import annotations

import dataclasses
import logging
import resource
import sys
from datetime import UTC, datetime
from pathlib import Path

from trainer.artifact import (
    MODEL_NAME,
    POPULAR_ITEMS_LIMIT,
    ModelMetadata,
    StoredModel,
    new_version,
    write_model_version,
)
from trainer.errors import PublishError
from trainer.evaluation import (
    EvaluationCase,
    PopularityRecommender,
    RankingQuality,
    ScoringRecommender,
    evaluate,
    evaluation_cases,
)
from trainer.metrics import TrainerMetrics
from trainer.model import to_torchscript
from trainer.publish import ModelReadyPublisher, model_ready_event
from trainer.sequences import ItemCatalogue, customer_histories
from trainer.settings import TrainerSettings, TrainingConfig
from trainer.snapshot import SnapshotPurchases, load_purchases
from trainer.training import EpochRecord, TrainedModel, train_recommender

logger = logging.getLogger(__name__)

BASELINE = "baseline_popularity"


@dataclasses.dataclass(frozen=True)
class TrainingData:
    """What a run learns from and is judged on, numbered by one catalogue."""

    catalogue: ItemCatalogue
    train_histories: dict[str, list[int]]
    validation_cases: list[EvaluationCase]
    test_cases: list[EvaluationCase]


@dataclasses.dataclass(frozen=True)
class TrainingReport:
    """The outcome of one run: where the model is and how good it is."""

    stored: StoredModel
    quality: dict[str, RankingQuality]
    trained: TrainedModel
    published: bool
    peak_memory_bytes: int

    def as_json(self) -> dict[str, object]:
        """The summary printed as the run's last line."""
        manifest = self.stored.manifest
        return {
            "model_name": manifest.model_name,
            "version": manifest.version,
            "snapshot_id": manifest.snapshot_id,
            "artifact_uri": self.stored.uri,
            "sha256": manifest.sha256,
            "size_bytes": manifest.size_bytes,
            "published": self.published,
            "metrics": manifest.metrics,
            "training_seconds": round(self.trained.training_seconds, 3),
            "epochs": len(self.trained.epochs),
            "best_epoch": self.trained.best_epoch,
            "stop_reason": self.trained.stop_reason,
            "peak_memory_bytes": self.peak_memory_bytes,
            "config": manifest.config,
        }


def prepare_data(purchases: SnapshotPurchases) -> TrainingData:
    """Number the products and build the training histories and the cases."""
    catalogue = ItemCatalogue.from_purchases(purchases.train)
    train_histories = customer_histories([purchases.train], catalogue)
    before_test = customer_histories([purchases.train, purchases.validation], catalogue)
    data = TrainingData(
        catalogue=catalogue,
        train_histories=train_histories,
        validation_cases=evaluation_cases(train_histories, purchases.validation),
        test_cases=evaluation_cases(before_test, purchases.test),
    )
    logger.info(
        "prepared training data",
        extra={
            "items": len(catalogue),
            "customers": len(train_histories),
            "validation_customers": len(data.validation_cases),
            "test_customers": len(data.test_cases),
        },
    )
    return data


def evaluate_on_test(
    trained: TrainedModel, data: TrainingData, config: TrainingConfig
) -> dict[str, RankingQuality]:
    """The model and the popularity baseline, ranked on the test customers."""
    model = ScoringRecommender(trained.model, config.max_len, config.eval_batch_size)
    baseline = PopularityRecommender(data.catalogue)
    return {
        "model": evaluate(model, data.test_cases, data.catalogue, config.cutoff),
        BASELINE: evaluate(baseline, data.test_cases, data.catalogue, config.cutoff),
    }


def flat_metrics(quality: dict[str, RankingQuality]) -> dict[str, float]:
    """ModelReady metrics: the model's bare, the baseline's prefixed."""
    metrics = quality["model"].as_metrics()
    metrics.update(quality[BASELINE].as_metrics(prefix=f"{BASELINE}."))
    metrics["test_customers"] = float(quality["model"].customers)
    return metrics


def store_model(
    settings: TrainerSettings,
    trained: TrainedModel,
    data: TrainingData,
    snapshot_id: str,
    quality: dict[str, RankingQuality],
) -> StoredModel:
    """Trace the model and write it, with its manifest, as a new version."""
    created_at = datetime.now(UTC)
    catalogue = data.catalogue
    metadata = ModelMetadata(
        model_name=MODEL_NAME,
        version=new_version(created_at),
        max_len=settings.training.max_len,
        item_ids=catalogue.item_ids,
        item_descriptions=catalogue.item_descriptions,
        popular_items=catalogue.popular_items(POPULAR_ITEMS_LIMIT),
    )
    return write_model_version(
        settings.registry_dir,
        to_torchscript(trained.model),
        metadata,
        snapshot_id=snapshot_id,
        metrics=flat_metrics(quality),
        config=settings.training.as_dict(),
        training={
            "seconds": round(trained.training_seconds, 3),
            "epochs": len(trained.epochs),
            "best_epoch": trained.best_epoch,
            "stop_reason": trained.stop_reason,
        },
        created_at=created_at,
    )


def run_training(
    settings: TrainerSettings,
    snapshot_dir: Path,
    publisher: ModelReadyPublisher | None,
    metrics: TrainerMetrics,
) -> TrainingReport:
    """Train on a snapshot, store the model, and announce it unless told not to."""
    purchases = load_purchases(snapshot_dir)
    data = prepare_data(purchases)

    def on_epoch(record: EpochRecord) -> None:
        metrics.epochs.inc()
        metrics.train_loss.set(record.train_loss)

    trained = train_recommender(
        data.catalogue,
        list(data.train_histories.values()),
        data.validation_cases,
        settings.training,
        on_epoch=on_epoch,
    )
    metrics.training_seconds.set(trained.training_seconds)

    quality = evaluate_on_test(trained, data, settings.training)
    for recommender, result in quality.items():
        metrics.record_quality(recommender, result)
    stored = store_model(settings, trained, data, purchases.snapshot_id, quality)

    if publisher is not None:
        announce(publisher, stored, metrics)
    return TrainingReport(
        stored=stored,
        quality=quality,
        trained=trained,
        published=publisher is not None,
        peak_memory_bytes=peak_memory_bytes(),
    )


def announce(
    publisher: ModelReadyPublisher, stored: StoredModel, metrics: TrainerMetrics
) -> None:
    """Publish ModelReady for ``stored``, counting the outcome."""
    try:
        publisher.publish(model_ready_event(stored))
    except PublishError:
        metrics.publish_failures.inc()
        raise
    metrics.models_published.inc()


def peak_memory_bytes() -> int:
    """The process's peak resident memory so far."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024
