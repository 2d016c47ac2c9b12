import pytest

from inference.errors import SettingsError
from inference.settings import InferenceSettings


def test_without_environment_the_interface_defaults_apply() -> None:
    settings = InferenceSettings.from_env({})

    assert (settings.grpc_host, settings.grpc_port) == ("127.0.0.1", 50051)
    assert settings.metrics_port == 9103
    assert settings.history_max_items == 50
    assert settings.device == "auto"


def test_settings_are_read_from_prefixed_variables() -> None:
    settings = InferenceSettings.from_env(
        {
            "RECOPS_INFERENCE_GRPC_PORT": "0",
            "RECOPS_INFERENCE_HISTORY_MAX_ITEMS": "20",
            "RECOPS_INFERENCE_SHUTDOWN_GRACE_SECONDS": "1.5",
            "RECOPS_INFERENCE_DEVICE": "cpu",
            "RECOPS_GRPC_PORT": "1",
        }
    )

    assert settings.grpc_port == 0
    assert settings.history_max_items == 20
    assert settings.shutdown_grace_seconds == 1.5
    assert settings.device == "cpu"


@pytest.mark.parametrize(
    ("name", "value", "why"),
    [
        ("GRPC_PORT", "fifty", "not a number"),
        ("METRICS_PORT", "70000", "metrics_port"),
        ("HISTORY_MAX_ITEMS", "0", "history_max_items"),
        ("DEVICE", "tpu", "device"),
        ("POLL_TIMEOUT_SECONDS", "0", "poll_timeout_seconds"),
        ("MAX_BATCH_SIZE", "0", "max_batch_size"),
        ("MAX_QUEUE_SIZE", "0", "max_queue_size"),
        ("MAX_BATCH_DELAY_SECONDS", "-0.001", "max_batch_delay_seconds"),
        ("MAX_BATCH_DELAY_SECONDS", "nan", "max_batch_delay_seconds"),
    ],
)
def test_a_value_the_service_cannot_use_is_refused(
    name: str, value: str, why: str
) -> None:
    with pytest.raises(SettingsError, match=why):
        InferenceSettings.from_env({f"RECOPS_INFERENCE_{name}": value})
