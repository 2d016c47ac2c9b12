"""The recops inference service: Recommend over gRPC from the newest good model.

Start it with ``python -m inference``; call it with
:class:`inference.client.StorefrontClient`. Settings come from
``RECOPS_INFERENCE_*`` (see :class:`InferenceSettings`); Kafka from
``RECOPS_KAFKA_BOOTSTRAP`` and ``RECOPS_TOPIC_PREFIX``.
"""

from inference.errors import (
    ArtifactRejectedError,
    InferenceError,
    InvalidRequestError,
    NotReadyError,
    RejectionReason,
    SettingsError,
    UnsupportedError,
)
from inference.settings import InferenceSettings

__all__ = [
    "ArtifactRejectedError",
    "InferenceError",
    "InferenceSettings",
    "InvalidRequestError",
    "NotReadyError",
    "RejectionReason",
    "SettingsError",
    "UnsupportedError",
]
