"""What can go wrong in the trainer, split by how a caller should react.

::

    TrainerError                  root; ``retriable`` says whether to try again
    ├── SnapshotError             the snapshot is missing or unusable (not retriable)
    │   └── CorpusError           product texts or search judgments are unusable
    ├── TrainingError             training could not produce a usable model
    ├── ArtifactError             a model version could not be written or read
    │   └── ArtifactIntegrityError  the bytes on disk are not what the manifest says
    └── PublishError              ModelReady was not acknowledged (retriable)
"""

from __future__ import annotations


class TrainerError(Exception):
    """Root of every error the trainer raises on purpose."""

    retriable: bool = False

    def __init__(self, message: str, *, retriable: bool | None = None) -> None:
        super().__init__(message)
        if retriable is not None:
            self.retriable = retriable


class SnapshotError(TrainerError):
    """The snapshot cannot be found or does not hold what training needs."""


class CorpusError(SnapshotError):
    """Product texts or relevance judgments for search are missing or unusable."""


class TrainingError(TrainerError):
    """Training ran but could not produce a model worth storing."""


class ArtifactError(TrainerError):
    """A model version could not be written to, or read from, the registry."""


class ArtifactIntegrityError(ArtifactError):
    """A stored model does not match its manifest: size, digest or shape."""


class PublishError(TrainerError):
    """The ModelReady event was not acknowledged by the cluster."""

    retriable = True
