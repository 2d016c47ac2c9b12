"""The monitor's settings, read once from ``RECOPS_MONITOR_*`` variables."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping

from eventbus.settings import read_env_fields
from monitor.errors import SettingsError

PREFIX = "RECOPS_MONITOR_"


@dataclasses.dataclass(frozen=True, kw_only=True)
class MonitorSettings:
    """How the monitor watches the platform.

    ``metrics_port`` 0 picks a free port. ``watched_group`` is the consumer
    group whose lag on the behaviour events topic the ``ConsumerLagHigh``
    rule judges against ``lag_threshold_events`` for ``lag_for_seconds``.
    """

    metrics_port: int = 9104
    watched_group: str = "recops-ingest"
    lag_threshold_events: int = 1000
    lag_for_seconds: float = 5.0
    evaluation_interval_seconds: float = 1.0
    kafka_timeout_seconds: float = 5.0
    log_level: str = "INFO"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> MonitorSettings:
        """Read every setting from ``RECOPS_MONITOR_<NAME>``, default if unset."""
        env = os.environ if env is None else env
        values = read_env_fields(cls, PREFIX, env, error=SettingsError)
        settings = cls(**values)  # type: ignore[arg-type]
        settings.check()
        return settings

    def check(self) -> None:
        """Refuse values the monitor cannot work with."""
        if self.lag_threshold_events < 0:
            raise SettingsError("lag_threshold_events must not be negative")
        if self.lag_for_seconds < 0:
            raise SettingsError("lag_for_seconds must not be negative")
        if self.evaluation_interval_seconds <= 0:
            raise SettingsError("evaluation_interval_seconds must be positive")
        if self.kafka_timeout_seconds <= 0:
            raise SettingsError("kafka_timeout_seconds must be positive")
