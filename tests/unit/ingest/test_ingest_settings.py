from pathlib import Path

import pytest

from ingest.errors import ConfigurationError
from ingest.settings import EventTimeMode, IngestSettings


def test_defaults_follow_the_interface() -> None:
    settings = IngestSettings.from_env({})

    assert settings.metrics_port == 9101
    assert settings.group_id == "recops-ingest"
    assert settings.instance_id == "recops.recops-ingest-0"
    assert settings.event_time_mode is EventTimeMode.BACKFILL


def test_settings_are_read_from_prefixed_variables() -> None:
    settings = IngestSettings.from_env(
        {
            "RECOPS_TOPIC_PREFIX": "dev.",
            "RECOPS_STATE_DIR": "/tmp/state",
            "RECOPS_INGEST_METRICS_PORT": "0",
            "RECOPS_INGEST_BATCH_MAX_EVENTS": "250",
            "RECOPS_INGEST_EVENT_TIME_MODE": "LIVE",
            "RECOPS_INGEST_MAX_EVENT_AGE_SECONDS": "60",
            "RECOPS_INGEST_EARLIEST_EVENT_TIME": "2010-01-01",
            "RECOPS_INGEST_MAX_EVENT_BYTES": "10000",
        }
    )

    assert settings.kafka.topic_prefix == "dev."
    assert settings.instance_id == "dev.recops-ingest-0"
    assert settings.state_dir == Path("/tmp/state")
    assert (settings.metrics_port, settings.batch_max_events) == (0, 250)
    assert settings.event_time_mode is EventTimeMode.LIVE
    assert settings.max_event_age_seconds == 60.0
    assert settings.earliest_event_time.isoformat() == "2010-01-01T00:00:00+00:00"
    assert settings.max_event_bytes == 10_000


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("RECOPS_INGEST_BATCH_MAX_EVENTS", "many"),
        ("RECOPS_INGEST_BATCH_MAX_EVENTS", "0"),
        ("RECOPS_INGEST_EVENT_TIME_MODE", "yesterday"),
        ("RECOPS_INGEST_METRICS_PORT", "70000"),
        ("RECOPS_INGEST_EARLIEST_EVENT_TIME", "soon"),
        ("RECOPS_INGEST_MAX_EVENT_BYTES", "0"),
        ("RECOPS_INGEST_STUCK_CALL_MARGIN_SECONDS", "0"),
        ("RECOPS_INGEST_BATCH_WAIT_SECONDS", "nan"),
        ("RECOPS_INGEST_SHUTDOWN_GRACE_SECONDS", "inf"),
        ("RECOPS_INGEST_MAX_EVENT_AGE_SECONDS", "-5"),
        ("RECOPS_INGEST_MAX_FUTURE_SKEW_SECONDS", "-1000"),
        ("RECOPS_INGEST_BATCH_MAX_EVENTS", "100000000"),
        ("RECOPS_INGEST_LOG_LEVEL", "LOUD"),
        ("RECOPS_INGEST_INSTANCE_ID", " "),
        ("RECOPS_INGEST_MAX_EVENT_BYTES", "1048588"),
    ],
)
def test_a_value_that_makes_no_sense_is_a_configuration_error(
    name: str, value: str
) -> None:
    with pytest.raises(ConfigurationError) as raised:
        IngestSettings.from_env({name: value})

    assert name in str(raised.value)
    assert raised.value.retriable is False
