from pathlib import Path

import pytest

from trainer.__main__ import build_parser, settings_with_overrides
from trainer.settings import TrainerSettings, TrainingConfig


def test_hyperparameters_come_from_prefixed_environment_variables() -> None:
    config = TrainingConfig.from_env(
        {"RECOPS_TRAINER_MAX_LEN": "30", "RECOPS_TRAINER_DROPOUT": "0.3"}
    )

    assert config.max_len == 30
    assert config.dropout == 0.3
    assert config.hidden_size == TrainingConfig().hidden_size


def test_a_malformed_hyperparameter_names_itself() -> None:
    with pytest.raises(ValueError, match="max_len"):
        TrainingConfig.from_env({"RECOPS_TRAINER_MAX_LEN": "long"})


def test_an_impossible_shape_is_refused() -> None:
    with pytest.raises(ValueError):
        TrainingConfig(hidden_size=30, num_heads=4)


def test_settings_read_the_shared_state_directory_and_trainer_variables() -> None:
    settings = TrainerSettings.from_env(
        {
            "RECOPS_STATE_DIR": "/srv/recops",
            "RECOPS_TRAINER_METRICS_PORT": "0",
            "RECOPS_TRAINER_SEED": "7",
        }
    )

    assert settings.registry_dir == Path("/srv/recops/registry")
    assert settings.snapshots_dir == Path("/srv/recops/snapshots")
    assert settings.metrics_port == 0
    assert settings.training.seed == 7


def test_the_command_line_wins_over_the_environment() -> None:
    settings = TrainerSettings.from_env(
        {"RECOPS_STATE_DIR": "/tmp/x", "RECOPS_TRAINER_MAX_EPOCHS": "9"}
    )
    args = build_parser().parse_args(
        ["train", "--snapshot", "latest", "--max-epochs", "2", "--learning-rate", "0.1"]
    )

    changed = settings_with_overrides(settings, args)

    assert changed.training.max_epochs == 2
    assert changed.training.learning_rate == 0.1
    assert changed.training.max_len == TrainingConfig().max_len
