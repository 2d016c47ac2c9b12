"""The drill service's settings, read once from ``RECOPS_DRILL_*`` variables."""

from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Mapping
from pathlib import Path

from drill.errors import SettingsError
from eventbus.settings import read_env_fields

PREFIX = "RECOPS_DRILL_"
REPO = Path(__file__).resolve().parents[2]

# Passed on to the cluster script so it finds the same cluster the drill uses.
CLUSTER_ENV_NAMES = ("RECOPS_KAFKA_PORT_BASE", "RECOPS_STATE_DIR", "RECOPS_CACHE_DIR")


@dataclasses.dataclass(frozen=True, kw_only=True)
class DrillSettings:
    """How drills are run, probed and reported.

    The fault injector runs ``cluster_python cluster_script kill-node|start-node
    <i>`` with ``cluster_env`` added to the environment. ``fault_seconds``,
    ``probe_events_per_second``, ``requests_per_second`` and
    ``max_recovery_seconds`` are defaults a command's parameters override.
    ``recommend_user_ids`` are shoppers the gRPC probe asks for; ``probe_user_id``
    and ``probe_item_id`` make the probe's purchases valid shop events.
    """

    metrics_port: int = 9105
    cluster_script: Path = REPO / "deploy" / "kafka" / "cluster.py"
    cluster_python: str = sys.executable
    cluster_env: Mapping[str, str] = dataclasses.field(default_factory=dict)
    cluster_command_timeout_seconds: float = 180.0
    ledger_path: Path = REPO / ".state" / "drills" / "faults.jsonl"
    reports_dir: Path = REPO / "reports" / "drills"
    fault_seconds: float = 10.0
    probe_events_per_second: float = 20.0
    requests_per_second: float = 10.0
    max_recovery_seconds: float = 60.0
    prepare_timeout_seconds: float = 60.0
    baseline_seconds: float = 3.0
    ingest_wait_seconds: float = 60.0
    probe_drain_seconds: float = 30.0
    healthy_streak: int = 3
    grpc_probe_enabled: bool = True
    grpc_target: str = "127.0.0.1:50051"
    grpc_deadline_seconds: float = 1.0
    recommend_k: int = 10
    recommend_user_ids: tuple[str, ...] = ("17841", "14911", "14096", "12748")
    probe_user_id: str = "17850"
    probe_item_id: str = "85123A"
    probe_item_price: float = 2.55
    kafka_timeout_seconds: float = 10.0
    log_level: str = "INFO"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> DrillSettings:
        """Read every setting from ``RECOPS_DRILL_<NAME>``, default if unset."""
        env = os.environ if env is None else env
        state_dir = Path(env.get("RECOPS_STATE_DIR", REPO / ".state"))
        values: dict[str, object] = {
            "ledger_path": state_dir / "drills" / "faults.jsonl",
            "cluster_env": {k: env[k] for k in CLUSTER_ENV_NAMES if k in env},
        }
        values |= read_env_fields(
            cls, PREFIX, env, error=SettingsError, skip=frozenset({"cluster_env"})
        )
        settings = cls(**values)  # type: ignore[arg-type]
        settings.check()
        return settings

    def check(self) -> None:
        """Refuse values the drill service cannot work with."""
        if not 0 <= self.metrics_port <= 65_535:
            raise SettingsError("metrics_port must be within 0..65535")
        if not self.recommend_user_ids:
            raise SettingsError("recommend_user_ids must name at least one shopper")
        if self.healthy_streak < 1:
            raise SettingsError("healthy_streak must be at least 1")
        for name in (
            "fault_seconds",
            "probe_events_per_second",
            "grpc_deadline_seconds",
        ):
            if getattr(self, name) <= 0:
                raise SettingsError(f"{name} must be positive")
