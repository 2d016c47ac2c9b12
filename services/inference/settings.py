"""The inference service's settings, read once from ``RECOPS_INFERENCE_*``."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping

from eventbus.settings import read_env_fields
from inference.errors import SettingsError

PREFIX = "RECOPS_INFERENCE_"
DEVICES = ("auto", "cpu", "cuda")
MAX_BATCH_SIZE = 1024
MAX_BATCH_DELAY_SECONDS = 1.0
MAX_QUEUE_SIZE = 100_000


@dataclasses.dataclass(frozen=True, kw_only=True)
class InferenceSettings:
    """How the inference service listens, remembers and scores.

    ``grpc_port`` and ``metrics_port`` 0 pick a free port. ``history_max_items``
    is how many recent purchases are kept per shopper. ``device`` ``auto``
    scores on CUDA when torch sees a GPU, else on the CPU. A batch is scored
    once it holds ``max_batch_size`` requests or its oldest request has
    waited ``max_batch_delay_seconds``; ``scoring_threads`` batches at once.
    Past ``max_queue_size`` waiting requests, new ones are refused at once.
    """

    grpc_host: str = "127.0.0.1"
    grpc_port: int = 50051
    metrics_host: str = "127.0.0.1"
    metrics_port: int = 9103
    model_name: str = "sequential-recommender"
    history_max_items: int = 50
    device: str = "auto"
    scoring_threads: int = 2
    max_batch_size: int = 32
    max_batch_delay_seconds: float = 0.002
    max_queue_size: int = 256
    poll_timeout_seconds: float = 0.5
    shutdown_grace_seconds: float = 5.0
    log_level: str = "INFO"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> InferenceSettings:
        """Read every setting from ``RECOPS_INFERENCE_<NAME>``, default if unset."""
        env = os.environ if env is None else env
        values = read_env_fields(cls, PREFIX, env, error=SettingsError)
        settings = cls(**values)  # type: ignore[arg-type]
        settings.check()
        return settings

    def check(self) -> None:
        """Refuse values the service cannot work with."""
        for name in ("grpc_port", "metrics_port"):
            port = getattr(self, name)
            if not 0 <= port <= 65535:
                raise SettingsError(f"{name} must be within 0..65535, got {port}")
        if self.history_max_items < 1:
            raise SettingsError("history_max_items must be at least 1")
        if self.scoring_threads < 1:
            raise SettingsError("scoring_threads must be at least 1")
        if not 1 <= self.max_batch_size <= MAX_BATCH_SIZE:
            raise SettingsError(
                f"max_batch_size must be within 1..{MAX_BATCH_SIZE}, "
                f"got {self.max_batch_size}"
            )
        if not 0 <= self.max_batch_delay_seconds <= MAX_BATCH_DELAY_SECONDS:
            raise SettingsError(
                "max_batch_delay_seconds must be within "
                f"0..{MAX_BATCH_DELAY_SECONDS}, got {self.max_batch_delay_seconds}"
            )
        if not 1 <= self.max_queue_size <= MAX_QUEUE_SIZE:
            raise SettingsError(
                f"max_queue_size must be within 1..{MAX_QUEUE_SIZE}, "
                f"got {self.max_queue_size}"
            )
        if self.device not in DEVICES:
            raise SettingsError(f"device must be one of {DEVICES}, got {self.device}")
        if self.poll_timeout_seconds <= 0:
            raise SettingsError("poll_timeout_seconds must be positive")
        if self.shutdown_grace_seconds < 0:
            raise SettingsError("shutdown_grace_seconds must not be negative")
