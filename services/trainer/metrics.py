"""The trainer's Prometheus metrics, registered on an injected registry."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

from trainer.evaluation import METRIC_NAMES, Evaluation


class TrainerMetrics:
    """What a training run reports while it runs and once it ends."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.training_seconds = Gauge(
            "recops_trainer_training_seconds",
            "Wall time of the last training run's fitting, in seconds.",
            registry=registry,
        )
        self.epochs = Counter(
            "recops_trainer_epochs",
            "Training epochs completed.",
            registry=registry,
        )
        self.train_loss = Gauge(
            "recops_trainer_train_loss",
            "Mean next-purchase cross-entropy of the last epoch.",
            registry=registry,
        )
        self.quality = Gauge(
            "recops_trainer_test_quality",
            "Ranking quality on the test split of the last run, by recommender "
            "(the model, each baseline, the serving model), candidates "
            "(repeats or new_items) and metric.",
            ["recommender", "candidates", "metric"],
            registry=registry,
        )
        self.models_published = Counter(
            "recops_trainer_models_published",
            "Model versions announced on the model-ready topic.",
            registry=registry,
        )
        self.models_refused = Counter(
            "recops_trainer_models_refused",
            "Candidate versions the quality gate refused.",
            registry=registry,
        )
        self.publish_failures = Counter(
            "recops_trainer_publish_failures",
            "ModelReady events the cluster did not acknowledge.",
            registry=registry,
        )

    def record_quality(self, recommender: str, evaluation: Evaluation) -> None:
        """Set the test-quality gauges of one recommender, at every cutoff."""
        candidates = evaluation.candidates.value
        for cutoff, quality in evaluation.at.items():
            for name in METRIC_NAMES:
                gauge = self.quality.labels(recommender, candidates, f"{name}@{cutoff}")
                gauge.set(getattr(quality, name))
