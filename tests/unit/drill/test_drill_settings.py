from pathlib import Path

import pytest

from drill.errors import SettingsError
from drill.settings import DrillSettings


def test_settings_are_read_from_prefixed_variables_with_their_types() -> None:
    settings = DrillSettings.from_env(
        {
            "RECOPS_DRILL_GRPC_PROBE_ENABLED": "false",
            "RECOPS_DRILL_FAULT_SECONDS": "4",
            "RECOPS_DRILL_RECOMMEND_USER_IDS": "12345, 67890",
            "RECOPS_DRILL_REPORTS_DIR": "/tmp/drill-reports",
        }
    )

    assert settings.grpc_probe_enabled is False
    assert settings.fault_seconds == 4.0
    assert settings.recommend_user_ids == ("12345", "67890")
    assert settings.reports_dir == Path("/tmp/drill-reports")


def test_the_cluster_script_gets_the_same_cluster_and_state_settings() -> None:
    settings = DrillSettings.from_env(
        {"RECOPS_KAFKA_PORT_BASE": "34092", "RECOPS_STATE_DIR": "/tmp/state"}
    )

    assert settings.cluster_env == {
        "RECOPS_KAFKA_PORT_BASE": "34092",
        "RECOPS_STATE_DIR": "/tmp/state",
    }
    assert settings.ledger_path == Path("/tmp/state/drills/faults.jsonl")
    assert settings.metrics_port == 9105


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("RECOPS_DRILL_GRPC_PROBE_ENABLED", "maybe"),
        ("RECOPS_DRILL_FAULT_SECONDS", "-1"),
        ("RECOPS_DRILL_HEALTHY_STREAK", "many"),
    ],
)
def test_an_unusable_setting_is_refused_at_start(name: str, value: str) -> None:
    with pytest.raises(SettingsError):
        DrillSettings.from_env({name: value})
