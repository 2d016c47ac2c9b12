"""The ingest service's settings, read once from ``RECOPS_INGEST_*``."""

from __future__ import annotations

import dataclasses
import enum
import math
import os
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

from eventbus import KafkaSettings
from eventbus.topics import BROKER_RECORD_MAX_BYTES
from ingest.errors import ConfigurationError
from ingest.profiles import ProfileLimits

REPO = Path(__file__).resolve().parents[2]
# The most records one consume call may return.
MAX_BATCH_EVENTS = 1_000_000
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
CLIENT_ID = "recops-ingest"
# An event larger than this is refused whatever the settings say, so the
# dead letter that carries it back always fits the dead-letter topic.
MAX_EVENT_BYTES_CEILING = BROKER_RECORD_MAX_BYTES // 4

E = TypeVar("E", bound=enum.StrEnum)


class EventTimeMode(enum.StrEnum):
    """Which event times ingest believes.

    ``live`` accepts only recent events; ``backfill`` also accepts historical
    ones, as a replay of past orders sends.
    """

    LIVE = "live"
    BACKFILL = "backfill"


@dataclasses.dataclass(frozen=True, kw_only=True)
class IngestSettings:
    """Everything the ingest service and the snapshot writer can be told.

    ``instance_id`` names one ingest replica for good: it is both its Kafka
    transactional id and its static group membership, so a restarted replica
    fences its dead predecessor and takes its partitions back at once. Give
    every concurrently running replica its own.
    """

    kafka: KafkaSettings
    group_id: str = "recops-ingest"
    instance_id: str = "recops-ingest-0"
    metrics_port: int = 9101
    batch_max_events: int = 5000
    batch_wait_seconds: float = 0.2
    event_time_mode: EventTimeMode = EventTimeMode.BACKFILL
    max_event_age_seconds: float = 7 * 86_400.0
    max_future_skew_seconds: float = 300.0
    earliest_event_time: datetime = datetime(2000, 1, 1, tzinfo=UTC)
    max_event_bytes: int = 64 * 1024
    state_dir: Path = REPO / ".state"
    snapshot_timeout_seconds: float = 300.0
    profile_recent_items: int = 50
    profile_recent_event_ids: int = 5000
    profile_terms: int = 20
    restore_timeout_seconds: float = 300.0
    broker_call_timeout_seconds: float = 30.0
    # How long past its timeout a transaction call may block before its
    # producer is replaced: librdkafka can block in one without end while a
    # coordinator is away (confluentinc/librdkafka#5456).
    stuck_call_margin_seconds: float = 30.0
    shutdown_grace_seconds: float = 20.0
    stall_seconds: float = 30.0
    stall_lag_events: int = 100
    liveness_seconds: float = 120.0
    log_level: str = "INFO"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> IngestSettings:
        """Read the settings; a value that does not parse is a ConfigurationError."""
        env = os.environ if env is None else env
        kafka = KafkaSettings.from_env(client_id=CLIENT_ID, env=env)
        read = _Reader(env, prefix="RECOPS_INGEST_")
        settings = cls(
            kafka=kafka,
            group_id=read.text("GROUP_ID", cls.group_id),
            instance_id=read.text(
                "INSTANCE_ID", f"{kafka.topic_prefix}recops-ingest-0"
            ),
            metrics_port=read.integer("METRICS_PORT", cls.metrics_port),
            batch_max_events=read.integer("BATCH_MAX_EVENTS", cls.batch_max_events),
            batch_wait_seconds=read.number(
                "BATCH_WAIT_SECONDS", cls.batch_wait_seconds
            ),
            event_time_mode=read.choice(
                "EVENT_TIME_MODE", EventTimeMode, cls.event_time_mode
            ),
            max_event_age_seconds=read.number(
                "MAX_EVENT_AGE_SECONDS", cls.max_event_age_seconds
            ),
            max_future_skew_seconds=read.number(
                "MAX_FUTURE_SKEW_SECONDS", cls.max_future_skew_seconds
            ),
            earliest_event_time=read.instant(
                "EARLIEST_EVENT_TIME", cls.earliest_event_time
            ),
            max_event_bytes=read.integer("MAX_EVENT_BYTES", cls.max_event_bytes),
            state_dir=Path(env.get("RECOPS_STATE_DIR", str(cls.state_dir))),
            snapshot_timeout_seconds=read.number(
                "SNAPSHOT_TIMEOUT_SECONDS", cls.snapshot_timeout_seconds
            ),
            profile_recent_items=read.integer(
                "PROFILE_RECENT_ITEMS", cls.profile_recent_items
            ),
            profile_recent_event_ids=read.integer(
                "PROFILE_RECENT_EVENT_IDS", cls.profile_recent_event_ids
            ),
            profile_terms=read.integer("PROFILE_TERMS", cls.profile_terms),
            restore_timeout_seconds=read.number(
                "RESTORE_TIMEOUT_SECONDS", cls.restore_timeout_seconds
            ),
            broker_call_timeout_seconds=read.number(
                "BROKER_CALL_TIMEOUT_SECONDS", cls.broker_call_timeout_seconds
            ),
            stuck_call_margin_seconds=read.number(
                "STUCK_CALL_MARGIN_SECONDS", cls.stuck_call_margin_seconds
            ),
            shutdown_grace_seconds=read.number(
                "SHUTDOWN_GRACE_SECONDS", cls.shutdown_grace_seconds
            ),
            stall_seconds=read.number("STALL_SECONDS", cls.stall_seconds),
            stall_lag_events=read.integer("STALL_LAG_EVENTS", cls.stall_lag_events),
            liveness_seconds=read.number("LIVENESS_SECONDS", cls.liveness_seconds),
            log_level=read.text("LOG_LEVEL", cls.log_level),
        )
        settings.check()
        return settings

    def check(self) -> None:
        """Refuse values no deployment could mean."""
        if not 1 <= self.batch_max_events <= MAX_BATCH_EVENTS:
            raise ConfigurationError(
                "RECOPS_INGEST_BATCH_MAX_EVENTS must be between 1 and "
                f"{MAX_BATCH_EVENTS}"
            )
        if self.batch_wait_seconds <= 0:
            raise ConfigurationError("RECOPS_INGEST_BATCH_WAIT_SECONDS must be > 0")
        if not 0 <= self.metrics_port <= 65_535:
            raise ConfigurationError("RECOPS_INGEST_METRICS_PORT must be a port")
        if not self.instance_id.strip():
            raise ConfigurationError("RECOPS_INGEST_INSTANCE_ID is empty")
        if self.log_level.upper() not in LOG_LEVELS:
            raise ConfigurationError(
                f"RECOPS_INGEST_LOG_LEVEL={self.log_level!r} is not one of "
                + ", ".join(LOG_LEVELS)
            )
        if self.max_future_skew_seconds < 0:
            raise ConfigurationError(
                "RECOPS_INGEST_MAX_FUTURE_SKEW_SECONDS must be >= 0"
            )
        if not 1 <= self.max_event_bytes <= MAX_EVENT_BYTES_CEILING:
            raise ConfigurationError(
                "RECOPS_INGEST_MAX_EVENT_BYTES must be between 1 and "
                f"{MAX_EVENT_BYTES_CEILING}, well below the broker's record limit"
            )
        for name, value in (
            ("PROFILE_RECENT_ITEMS", self.profile_recent_items),
            ("PROFILE_RECENT_EVENT_IDS", self.profile_recent_event_ids),
            ("PROFILE_TERMS", self.profile_terms),
        ):
            if value < 1:
                raise ConfigurationError(f"RECOPS_INGEST_{name} must be >= 1")
        for name, seconds in (
            ("MAX_EVENT_AGE_SECONDS", self.max_event_age_seconds),
            ("RESTORE_TIMEOUT_SECONDS", self.restore_timeout_seconds),
            ("BROKER_CALL_TIMEOUT_SECONDS", self.broker_call_timeout_seconds),
            ("STUCK_CALL_MARGIN_SECONDS", self.stuck_call_margin_seconds),
            ("SHUTDOWN_GRACE_SECONDS", self.shutdown_grace_seconds),
            ("STALL_SECONDS", self.stall_seconds),
            ("LIVENESS_SECONDS", self.liveness_seconds),
        ):
            if seconds <= 0:
                raise ConfigurationError(f"RECOPS_INGEST_{name} must be > 0")

    def profile_limits(self) -> ProfileLimits:
        """How much of each shopper's past the profiles keep."""
        return ProfileLimits(
            recent_items=self.profile_recent_items,
            recent_event_ids=self.profile_recent_event_ids,
            terms=self.profile_terms,
        )


@dataclasses.dataclass(frozen=True)
class _Reader:
    env: Mapping[str, str]
    prefix: str

    def text(self, name: str, default: str) -> str:
        return self.env.get(self.prefix + name, default)

    def integer(self, name: str, default: int) -> int:
        raw = self.env.get(self.prefix + name)
        if raw is None:
            return default
        try:
            return int(raw)
        except ValueError:
            raise ConfigurationError(
                f"{self.prefix}{name}={raw!r} is not an integer"
            ) from None

    def number(self, name: str, default: float) -> float:
        raw = self.env.get(self.prefix + name)
        if raw is None:
            return default
        try:
            number = float(raw)
        except ValueError:
            number = math.nan
        if not math.isfinite(number):
            raise ConfigurationError(f"{self.prefix}{name}={raw!r} is not a number")
        return number

    def choice(self, name: str, kind: type[E], default: E) -> E:
        raw = self.env.get(self.prefix + name)
        if raw is None:
            return default
        try:
            return kind(raw.strip().lower())
        except ValueError:
            allowed = ", ".join(member.value for member in kind)
            raise ConfigurationError(
                f"{self.prefix}{name}={raw!r} is not one of {allowed}"
            ) from None

    def instant(self, name: str, default: datetime) -> datetime:
        raw = self.env.get(self.prefix + name)
        if raw is None:
            return default
        try:
            parsed = datetime.fromisoformat(raw)
        except ValueError:
            raise ConfigurationError(
                f"{self.prefix}{name}={raw!r} is not ISO 8601"
            ) from None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
