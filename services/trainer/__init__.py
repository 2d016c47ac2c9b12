"""The trainer: learns a sequential recommender from a training snapshot.

``python -m trainer train --snapshot <dir|latest>`` reads the customers'
purchases, trains a small causal transformer over each purchase history,
ranks the test customers against the whole catalogue beside a popularity
baseline, stores the model as a TorchScript version in the registry and
announces it with a ModelReady event. :mod:`trainer.artifact` documents the
stored format and reads it back.
"""

from trainer.artifact import (
    MODEL_NAME,
    LoadedModel,
    ModelManifest,
    ModelMetadata,
    StoredModel,
    load_model_uri,
    load_model_version,
)
from trainer.errors import (
    ArtifactError,
    ArtifactIntegrityError,
    PublishError,
    SnapshotError,
    TrainerError,
    TrainingError,
)
from trainer.settings import TrainerSettings, TrainingConfig

__all__ = [
    "MODEL_NAME",
    "ArtifactError",
    "ArtifactIntegrityError",
    "LoadedModel",
    "ModelManifest",
    "ModelMetadata",
    "PublishError",
    "SnapshotError",
    "StoredModel",
    "TrainerError",
    "TrainerSettings",
    "TrainingConfig",
    "TrainingError",
    "load_model_uri",
    "load_model_version",
]
