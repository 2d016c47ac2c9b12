import pytest

from monitor.errors import SettingsError
from monitor.settings import MonitorSettings


def test_settings_default_to_the_documented_rule_and_port() -> None:
    settings = MonitorSettings.from_env({})

    assert settings.metrics_port == 9104
    assert settings.watched_group == "recops-ingest"
    assert (settings.lag_threshold_events, settings.lag_for_seconds) == (1000, 5.0)


def test_settings_are_read_from_prefixed_variables_with_their_types() -> None:
    settings = MonitorSettings.from_env(
        {
            "RECOPS_MONITOR_LAG_THRESHOLD_EVENTS": "50",
            "RECOPS_MONITOR_LAG_FOR_SECONDS": "0.5",
            "RECOPS_MONITOR_WATCHED_GROUP": "other",
        }
    )

    assert settings.lag_threshold_events == 50
    assert settings.lag_for_seconds == 0.5
    assert settings.watched_group == "other"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("RECOPS_MONITOR_LAG_THRESHOLD_EVENTS", "many"),
        ("RECOPS_MONITOR_EVALUATION_INTERVAL_SECONDS", "0"),
        ("RECOPS_MONITOR_LAG_FOR_SECONDS", "-1"),
    ],
)
def test_an_unusable_setting_is_refused_at_start(name: str, value: str) -> None:
    with pytest.raises(SettingsError):
        MonitorSettings.from_env({name: value})
