import dataclasses
from pathlib import Path

import pytest

from eventbus.settings import KafkaSettings, read_env_fields


@dataclasses.dataclass(frozen=True, kw_only=True)
class ExampleSettings:
    port: int = 1
    wait_seconds: float = 0.5
    enabled: bool = True
    state_dir: Path = Path("state")
    users: tuple[str, ...] = ()
    name: str = "a"


class ExampleError(Exception):
    pass


def test_each_variable_is_parsed_by_its_fields_type() -> None:
    env = {
        "X_PORT": "8080",
        "X_WAIT_SECONDS": "2.5",
        "X_ENABLED": "no",
        "X_STATE_DIR": "/tmp/state",
        "X_USERS": "17850, 12748,,",
        "X_NAME": "b",
    }

    values = read_env_fields(ExampleSettings, "X_", env)

    assert values == {
        "port": 8080,
        "wait_seconds": 2.5,
        "enabled": False,
        "state_dir": Path("/tmp/state"),
        "users": ("17850", "12748"),
        "name": "b",
    }


def test_unset_and_skipped_variables_keep_their_defaults() -> None:
    env = {"X_PORT": "8080", "X_NAME": "b"}

    values = read_env_fields(ExampleSettings, "X_", env, skip=frozenset({"name"}))

    assert values == {"port": 8080}


@pytest.mark.parametrize(
    ("variable", "raw", "message"),
    [
        ("X_PORT", "abc", "X_PORT='abc' is not a number"),
        ("X_WAIT_SECONDS", "soon", "X_WAIT_SECONDS='soon' is not a number"),
        ("X_ENABLED", "maybe", "X_ENABLED='maybe' is not true or false"),
    ],
)
def test_a_bad_value_raises_the_callers_error_naming_the_variable(
    variable: str, raw: str, message: str
) -> None:
    with pytest.raises(ExampleError, match=message):
        read_env_fields(ExampleSettings, "X_", {variable: raw}, error=ExampleError)


def test_kafka_settings_name_topics_with_the_deployment_prefix() -> None:
    env = {"RECOPS_KAFKA_BOOTSTRAP": "127.0.0.1:1", "RECOPS_TOPIC_PREFIX": "shop."}

    settings = KafkaSettings.from_env("ingest", env)

    assert settings.topic("alerts") == "shop.alerts"
    assert settings.producer_config()["acks"] == "all"
    assert settings.producer_config()["enable.idempotence"] is True
    assert settings.consumer_config("g")["enable.auto.commit"] is False
