"""One training run, as named steps: read, train, judge, gate, store, announce.

The candidate is judged as it will serve, through its TorchScript export:
every validation batch must score finitely, and on the test split it is
ranked beside the baselines and the serving model, both ways
(:class:`~trainer.evaluation.Candidates`). The gate compares it with the
serving model on the same test customers. An accepted candidate becomes a
registry version, is announced, and only then becomes the serving version;
a refused one is logged, alerted and kept aside for inspection, outside the
registry, where nothing serves it.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import resource
import sys
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path

import torch

from trainer.artifact import (
    MODEL_NAME,
    POPULAR_ITEMS_LIMIT,
    LoadedModel,
    ModelMetadata,
    StoredModel,
    code_version,
    new_version,
    write_model_version,
)
from trainer.baselines import (
    CoOccurrenceRecommender,
    PopularityRecommender,
    RepeatRecommender,
)
from trainer.errors import ArtifactError, PublishError, SnapshotError, TrainerError
from trainer.evaluation import (
    GATE_CANDIDATES,
    SCORING_BATCH,
    Candidates,
    Evaluation,
    EvaluationCase,
    Recommender,
    ScoringRecommender,
    evaluate,
    evaluation_cases,
)
from trainer.gate import GateDecision, check_finite, decide
from trainer.metrics import TrainerMetrics
from trainer.model import to_torchscript
from trainer.publish import (
    AlertPublisher,
    ModelReadyPublisher,
    model_ready_event,
    report_refusal,
)
from trainer.registry import keep_version, load_serving_model, store_for, write_serving
from trainer.sequences import (
    PADDING_INDEX,
    ItemCatalogue,
    basket_weights,
    customer_histories,
)
from trainer.settings import TrainerSettings
from trainer.snapshot import PurchaseLog, SnapshotPurchases, load_purchases
from trainer.training import EpochRecord, TrainedModel, train_recommender

logger = logging.getLogger(__name__)

MODEL = "model"
SERVING = "serving"
BASELINES = ("popularity", "recent_popularity", "repeat", "co_occurrence")
BASELINE_PREFIX = "baseline."

# recommender -> candidates -> evaluation
QualityTable = dict[str, dict[Candidates, Evaluation]]


@dataclasses.dataclass(frozen=True)
class TrainingData:
    """What a run learns from and is judged on, numbered by one catalogue."""

    catalogue: ItemCatalogue
    train_log: PurchaseLog
    train_histories: dict[str, list[int]]
    train_weights: dict[str, list[float]]
    refit_histories: dict[str, list[int]]
    refit_weights: dict[str, list[float]]
    validation_cases: list[EvaluationCase]
    test_cases: list[EvaluationCase]


@dataclasses.dataclass(frozen=True)
class TrainingReport:
    """The outcome of one run: where the model is, how good, and the verdict."""

    stored: StoredModel
    quality: QualityTable
    decision: GateDecision
    trained: TrainedModel
    published: bool
    peak_memory_bytes: int

    @property
    def accepted(self) -> bool:
        return self.decision.accepted

    def as_json(self) -> dict[str, object]:
        """The summary printed as the run's last line."""
        manifest = self.stored.manifest
        return {
            "model_name": manifest.model_name,
            "version": manifest.version,
            "snapshot_id": manifest.snapshot_id,
            "accepted": self.accepted,
            "gate": {
                "metric": self.decision.metric,
                "candidates": GATE_CANDIDATES.value,
                "candidate": self.decision.candidate_value,
                "serving": self.decision.serving_value,
                "serving_version": self.decision.serving_version,
                "threshold": self.decision.threshold,
                "reasons": list(self.decision.reasons),
            },
            "artifact_uri": self.stored.uri,
            "sha256": manifest.sha256,
            "size_bytes": manifest.size_bytes,
            "published": self.published,
            "metrics": manifest.metrics,
            "training_seconds": round(self.trained.training_seconds, 3),
            "epochs": len(self.trained.epochs),
            "best_epoch": self.trained.best_epoch,
            "refit_epochs": self.trained.refit_epochs,
            "stop_reason": self.trained.stop_reason,
            "peak_memory_bytes": self.peak_memory_bytes,
            "config": manifest.config,
        }


class ModelRefusedError(TrainerError):
    """The quality gate refused the candidate; nothing was announced.

    ``report`` holds the refused run, stored outside the registry.
    """

    def __init__(self, report: TrainingReport) -> None:
        reasons = "; ".join(report.decision.reasons)
        super().__init__(
            f"{report.stored.manifest.version} refused: {reasons}; "
            f"kept for inspection at {report.stored.directory}"
        )
        self.report = report


def prepare_data(purchases: SnapshotPurchases, half_life: float = 0.0) -> TrainingData:
    """Number the products; build the histories, their label weights, the cases.

    ``half_life`` is :attr:`TrainingConfig.recency_half_life_days`.
    """
    catalogue = ItemCatalogue.from_purchases(purchases.train)
    train_histories = customer_histories([purchases.train], catalogue)
    before_test = customer_histories([purchases.train, purchases.validation], catalogue)
    data = TrainingData(
        catalogue=catalogue,
        train_log=purchases.train,
        train_histories=train_histories,
        train_weights=basket_weights([purchases.train], catalogue, half_life),
        refit_histories=before_test,
        refit_weights=basket_weights(
            [purchases.train, purchases.validation], catalogue, half_life
        ),
        validation_cases=evaluation_cases(train_histories, purchases.validation),
        test_cases=evaluation_cases(before_test, purchases.test),
    )
    if not data.test_cases:
        raise SnapshotError(
            "the test split holds no purchases by customers seen before it: "
            "there is nothing to judge a model on"
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


def baselines(data: TrainingData) -> dict[str, Recommender]:
    """The simple recommenders the model is judged beside, fitted on training."""
    return {
        "popularity": PopularityRecommender.all_time(data.catalogue),
        "recent_popularity": PopularityRecommender.recent(
            data.train_log, data.catalogue
        ),
        "repeat": RepeatRecommender(data.catalogue),
        "co_occurrence": CoOccurrenceRecommender.fit(
            data.train_histories.values(), data.catalogue
        ),
    }


def judge(
    recommenders: Mapping[str, Recommender],
    cases: Sequence[EvaluationCase],
    catalogue: ItemCatalogue,
    batch_size: int = SCORING_BATCH,
) -> QualityTable:
    """Every recommender on the same cases, both ways, at the reported cutoffs."""
    return {
        name: {
            candidates: evaluate(
                recommender,
                cases,
                catalogue,
                candidates=candidates,
                batch_size=batch_size,
            )
            for candidates in Candidates
        }
        for name, recommender in recommenders.items()
    }


def score_problems(
    recommender: Recommender,
    cases: Sequence[EvaluationCase],
    batch_size: int = SCORING_BATCH,
) -> list[str]:
    """What :func:`check_finite` finds in each validation batch, by batch."""
    histories = [case.history for case in cases]
    problems = []
    for start in range(0, len(histories), batch_size):
        scores = recommender.scores(histories[start : start + batch_size])
        problem = check_finite(scores)
        if problem is not None:
            problems.append(f"validation batch {start // batch_size + 1}: {problem}")
    return problems


class CatalogueBridge:
    """A stored model scoring in another catalogue's numbering.

    Histories are renumbered into the stored model's catalogue, dropping
    products it never saw; its scores come back in ``catalogue``'s numbering,
    with products it cannot score at minus infinity, so the evaluation never
    recommends them for it.
    """

    def __init__(self, loaded: LoadedModel, catalogue: ItemCatalogue) -> None:
        known = {item_id: i for i, item_id in enumerate(loaded.metadata.item_ids)}
        self._into = [
            known.get(item_id, PADDING_INDEX) for item_id in catalogue.item_ids
        ]
        self._columns = torch.tensor(self._into)
        self._unknown = self._columns.eq(PADDING_INDEX)
        self._inner = ScoringRecommender(loaded.scores, loaded.metadata.max_len)

    def scores(self, histories: Sequence[list[int]]) -> torch.Tensor:
        renumbered = [
            [self._into[i] for i in history if self._into[i] != PADDING_INDEX]
            for history in histories
        ]
        scores = self._inner.scores(renumbered).index_select(1, self._columns)
        return scores.masked_fill(self._unknown, -math.inf)


def serving_recommender(
    settings: TrainerSettings, catalogue: ItemCatalogue
) -> tuple[CatalogueBridge | None, str | None]:
    """The serving model, ready to be judged on this run's cases, and its version.

    A serving version that is damaged or missing is logged and judged as
    absent: a broken serving model must not block a good replacement. A
    registry that cannot be reached just now (a retriable error) fails the
    run instead, so that no candidate skips the comparison for an outage.
    """
    try:
        loaded = load_serving_model(
            store_for(settings), MODEL_NAME, settings.registry_dir
        )
    except ArtifactError as exc:
        if exc.retriable:
            raise
        logger.error("the serving model cannot be loaded; judging without it: %s", exc)
        return None, None
    if loaded is None:
        return None, None
    return CatalogueBridge(loaded, catalogue), loaded.manifest.version


def flat_metrics(quality: QualityTable) -> dict[str, float]:
    """ModelReady metrics: the model's bare, each baseline's prefixed."""
    metrics: dict[str, float] = {}
    for name, evaluations in quality.items():
        if name == SERVING:
            continue
        prefix = "" if name == MODEL else f"{BASELINE_PREFIX}{name}."
        for evaluation in evaluations.values():
            metrics.update(evaluation.as_metrics(prefix))
    gated = quality[MODEL][GATE_CANDIDATES]
    metrics["test_customers"] = float(gated.customers)
    return metrics


def store_model(
    registry_dir: Path,
    settings: TrainerSettings,
    module: torch.jit.ScriptModule,
    trained: TrainedModel,
    data: TrainingData,
    *,
    version: str,
    created_at: datetime,
    snapshot_id: str,
    metrics: Mapping[str, float],
) -> StoredModel:
    """Write the traced model and its manifest as a version in ``registry_dir``."""
    catalogue = data.catalogue
    metadata = ModelMetadata(
        model_name=MODEL_NAME,
        version=version,
        max_len=settings.training.history_len,
        item_ids=catalogue.item_ids,
        item_descriptions=catalogue.item_descriptions,
        popular_items=catalogue.popular_items(POPULAR_ITEMS_LIMIT),
    )
    return write_model_version(
        registry_dir,
        module,
        metadata,
        snapshot_id=snapshot_id,
        metrics=metrics,
        config=settings.training.as_dict(),
        training={
            "seconds": round(trained.training_seconds, 3),
            "epochs": len(trained.epochs),
            "best_epoch": trained.best_epoch,
            "refit_epochs": trained.refit_epochs,
            "stop_reason": trained.stop_reason,
        },
        created_at=created_at,
        code_version=code_version(),
    )


def run_training(
    settings: TrainerSettings,
    snapshot_dir: Path,
    publisher: ModelReadyPublisher | None,
    metrics: TrainerMetrics,
    *,
    alerts: AlertPublisher | None = None,
    progress: bool = False,
) -> TrainingReport:
    """Train on a snapshot, judge, gate, store; announce unless told not to.

    Raises :class:`ModelRefusedError` after reporting a refusal.
    """
    created_at = datetime.now(UTC)
    version = new_version(created_at)
    purchases = load_purchases(snapshot_dir)
    data = prepare_data(purchases, settings.training.recency_half_life_days)
    config = settings.training

    def on_epoch(record: EpochRecord) -> None:
        metrics.epochs.inc()
        metrics.train_loss.set(record.train_loss)

    trained = train_recommender(
        data.catalogue,
        list(data.train_histories.values()),
        data.validation_cases,
        config,
        weights=list(data.train_weights.values()),
        refit_histories=list(data.refit_histories.values()),
        refit_weights=list(data.refit_weights.values()),
        on_epoch=on_epoch,
        log_dir=settings.tensorboard_dir / version,
        progress=progress,
    )
    metrics.training_seconds.set(trained.training_seconds)

    module = to_torchscript(trained.model)
    candidate = ScoringRecommender(module, config.history_len)
    problems = score_problems(candidate, data.validation_cases, config.eval_batch_size)
    recommenders: dict[str, Recommender] = {MODEL: candidate, **baselines(data)}
    serving, serving_version = serving_recommender(settings, data.catalogue)
    if serving is not None:
        recommenders[SERVING] = serving
    quality = judge(
        recommenders, data.test_cases, data.catalogue, config.eval_batch_size
    )
    for name, evaluations in quality.items():
        for evaluation in evaluations.values():
            metrics.record_quality(name, evaluation)

    decision = decide(
        candidate_metrics=quality[MODEL][GATE_CANDIDATES].as_metrics(),
        serving_metrics=(
            quality[SERVING][GATE_CANDIDATES].as_metrics() if serving else None
        ),
        metric=settings.gate_metric,
        tolerance=settings.gate_tolerance,
        serving_version=serving_version,
        score_problems=problems,
    )
    destination = settings.registry_dir if decision.accepted else settings.refused_dir
    stored = store_model(
        destination,
        settings,
        module,
        trained,
        data,
        version=version,
        created_at=created_at,
        snapshot_id=purchases.snapshot_id,
        metrics=flat_metrics(quality),
    )
    report = TrainingReport(
        stored=stored,
        quality=quality,
        decision=decision,
        trained=trained,
        published=False,
        peak_memory_bytes=peak_memory_bytes(),
    )
    if not decision.accepted:
        refuse(report, alerts, metrics)

    store = store_for(settings)
    stored = keep_version(store, stored)
    if publisher is not None:
        announce(publisher, stored, metrics)
        write_serving(store, stored.manifest)
    return dataclasses.replace(report, stored=stored, published=publisher is not None)


def refuse(
    report: TrainingReport, alerts: AlertPublisher | None, metrics: TrainerMetrics
) -> None:
    """Report a refused candidate, then raise :class:`ModelRefusedError`."""
    metrics.models_refused.inc()
    manifest = report.stored.manifest
    if alerts is None:
        logger.error(
            "model version %s refused by the quality gate: %s",
            manifest.version,
            "; ".join(report.decision.reasons),
        )
    else:
        report_refusal(
            report.decision,
            alerts,
            model_name=manifest.model_name,
            version=manifest.version,
        )
    raise ModelRefusedError(report)


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
