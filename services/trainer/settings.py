"""The trainer's settings, read once from ``RECOPS_TRAINER_*`` variables.

Every field of :class:`TrainingConfig` can be set as
``RECOPS_TRAINER_<FIELD>`` (``RECOPS_TRAINER_MAX_LEN=50``) and again on the
command line (``--max-len 50``), the command line winning. The state directory
is the one all services share, ``RECOPS_STATE_DIR``; the registry's location
is ``RECOPS_REGISTRY_URI``, by default ``file://$RECOPS_STATE_DIR/registry``.
"""

from __future__ import annotations

import dataclasses
import math
import os
import typing
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import unquote, urlparse

from trainer.evaluation import METRIC_NAMES, REPORTED_CUTOFFS

ENV_PREFIX = "RECOPS_TRAINER_"
REPO = Path(__file__).resolve().parents[2]
_Number = typing.TypeVar("_Number", int, float)
_POSITIVE_FIELDS = (
    "hidden_size",
    "num_heads",
    "num_layers",
    "patience_epochs",
    "batch_size",
    "max_epochs",
    "cutoff",
    "eval_batch_size",
)


@dataclasses.dataclass(frozen=True, kw_only=True)
class TrainingConfig:
    """Hyperparameters of one training run; stored in every manifest."""

    max_len: int = 50
    history_len: int = 500
    target_horizon: int = 30
    recency_half_life_days: float = 60.0
    hidden_size: int = 64
    num_layers: int = 2
    num_heads: int = 2
    dropout: float = 0.2
    learning_rate: float = 0.002
    weight_decay: float = 0.0
    batch_size: int = 128
    max_epochs: int = 30
    patience_epochs: int = 3
    max_training_seconds: float = 300.0
    seed: int = 42
    cutoff: int = 10
    eval_batch_size: int = 128

    def __post_init__(self) -> None:
        if self.max_len < 2:
            raise ValueError("max_len must be at least 2")
        if self.history_len < self.max_len:
            raise ValueError("history_len must be at least max_len")
        if not self.recency_half_life_days >= 0:
            raise ValueError("recency_half_life_days must be 0 (off) or positive")
        if self.target_horizon < 1:
            raise ValueError("target_horizon must be at least 1")
        for name in _POSITIVE_FIELDS:
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        if self.hidden_size % self.num_heads:
            raise ValueError("hidden_size must be a multiple of num_heads")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError("dropout must be in [0, 1)")
        if not 0.0 < self.learning_rate < math.inf:
            raise ValueError("learning_rate must be positive and finite")
        if not 0.0 <= self.weight_decay < math.inf:
            raise ValueError("weight_decay must be 0 or positive, and finite")
        if not self.max_training_seconds > 0:
            raise ValueError("max_training_seconds must be positive")

    def as_dict(self) -> dict[str, int | float]:
        """The fields as a JSON-ready mapping."""
        return dataclasses.asdict(self)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> TrainingConfig:
        """Defaults, overridden by whichever ``RECOPS_TRAINER_<FIELD>`` is set."""
        env = os.environ if env is None else env
        values: dict[str, object] = {}
        for name, kind in config_field_types().items():
            raw = env.get(ENV_PREFIX + name.upper())
            if raw is not None:
                values[name] = parse_field(name, kind, raw)
        return cls(**values)  # type: ignore[arg-type]


def config_field_types() -> dict[str, type]:
    """Each :class:`TrainingConfig` field and its Python type (int or float)."""
    hints = typing.get_type_hints(TrainingConfig)
    return {
        field.name: hints[field.name] for field in dataclasses.fields(TrainingConfig)
    }


def parse_field(name: str, kind: type, raw: str) -> int | float:
    """Read one hyperparameter from text, naming it when the text is wrong."""
    try:
        return int(raw) if kind is int else float(raw)
    except ValueError:
        raise ValueError(f"{name} must be {kind.__name__}, got {raw!r}") from None


@dataclasses.dataclass(frozen=True, kw_only=True)
class TrainerSettings:
    """Where the trainer reads and writes, and how it runs.

    ``metrics_port`` 0 picks a free port; a negative port serves no metrics.
    ``registry_uri`` (``RECOPS_REGISTRY_URI``) is ``file://<dir>`` or
    ``s3://bucket/prefix``, the latter on ``s3_endpoint_url``
    (``RECOPS_S3_ENDPOINT_URL``) when not on AWS. The quality gate compares
    ``gate_metric`` and refuses a candidate below the serving model's value
    by more than ``gate_tolerance``, a fraction of that value.
    """

    state_dir: Path
    metrics_port: int = 9102
    torch_threads: int = 2
    publish_timeout_seconds: float = 30.0
    log_level: str = "INFO"
    registry_uri: str = ""
    s3_endpoint_url: str | None = None
    gate_metric: str = "ndcg@10"
    gate_tolerance: float = 0.02
    training: TrainingConfig = dataclasses.field(default_factory=TrainingConfig)

    def __post_init__(self) -> None:
        if not self.registry_uri:
            default_uri = (self.state_dir / "registry").absolute().as_uri()
            object.__setattr__(self, "registry_uri", default_uri)
        scheme = urlparse(self.registry_uri).scheme
        if scheme not in ("file", "s3"):
            raise ValueError(f"registry URI must be file:// or s3://, got {scheme!r}")
        if not 0.0 <= self.gate_tolerance < 1.0:
            raise ValueError("gate_tolerance must be a fraction in [0, 1)")
        if self.gate_metric not in gate_metrics():
            raise ValueError(
                f"gate_metric must be one of {', '.join(gate_metrics())}, "
                f"got {self.gate_metric!r}"
            )

    @property
    def snapshots_dir(self) -> Path:
        return self.state_dir / "snapshots"

    @property
    def tensorboard_dir(self) -> Path:
        """Training curves, one TensorBoard run per version."""
        return self.state_dir / "tensorboard"

    @property
    def refused_dir(self) -> Path:
        """Versions the quality gate refused, kept for inspection, never served."""
        return self.state_dir / "refused"

    @property
    def registry_dir(self) -> Path:
        """Where versions are written and fetched to on this machine.

        The registry itself when it is local; else a local copy, uploaded
        from and loaded from.
        """
        parsed = urlparse(self.registry_uri)
        if parsed.scheme == "file":
            return Path(unquote(parsed.path))
        return self.state_dir / "registry-cache"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> TrainerSettings:
        env = os.environ if env is None else env
        return cls(
            state_dir=Path(env.get("RECOPS_STATE_DIR", str(REPO / ".state"))),
            metrics_port=_env_number(env, "METRICS_PORT", int, "9102"),
            torch_threads=_env_number(env, "TORCH_THREADS", int, "2"),
            publish_timeout_seconds=_env_number(
                env, "PUBLISH_TIMEOUT_SECONDS", float, "30"
            ),
            log_level=env.get(ENV_PREFIX + "LOG_LEVEL", "INFO"),
            registry_uri=env.get("RECOPS_REGISTRY_URI", ""),
            s3_endpoint_url=env.get("RECOPS_S3_ENDPOINT_URL") or None,
            gate_metric=env.get(ENV_PREFIX + "GATE_METRIC", "ndcg@10"),
            gate_tolerance=_env_number(env, "GATE_TOLERANCE", float, "0.02"),
            training=TrainingConfig.from_env(env),
        )


def gate_metrics() -> tuple[str, ...]:
    """The metrics the quality gate can compare, like ``ndcg@10``."""
    return tuple(
        f"{name}@{cutoff}" for name in METRIC_NAMES for cutoff in REPORTED_CUTOFFS
    )


def _env_number(
    env: Mapping[str, str], name: str, kind: type[_Number], default: str
) -> _Number:
    """One ``RECOPS_TRAINER_<NAME>`` number, naming the variable when it is wrong."""
    raw = env.get(ENV_PREFIX + name, default)
    try:
        return kind(raw)
    except ValueError:
        raise ValueError(
            f"{ENV_PREFIX + name} must be {kind.__name__}, got {raw!r}"
        ) from None
