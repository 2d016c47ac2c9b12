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


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("num_heads", 0),
        ("hidden_size", -4),
        ("eval_batch_size", 0),
        ("learning_rate", -1.0),
        ("learning_rate", float("nan")),
        ("learning_rate", float("inf")),
        ("weight_decay", -1.0),
        ("recency_half_life_days", float("nan")),
        ("num_layers", 0),
        ("patience_epochs", -1),
        ("max_training_seconds", -5.0),
        ("max_training_seconds", float("nan")),
    ],
)
def test_a_hyperparameter_training_cannot_use_is_refused_by_name(
    field: str, value: float
) -> None:
    with pytest.raises(ValueError, match=field):
        TrainingConfig(**{field: value})  # type: ignore[arg-type]


def test_a_gate_metric_no_run_measures_is_refused_before_training() -> None:
    with pytest.raises(ValueError, match=r"gate_metric.*'ndcg@5'"):
        TrainerSettings.from_env({"RECOPS_TRAINER_GATE_METRIC": "ndcg@5"})


def test_a_malformed_service_setting_names_its_variable() -> None:
    with pytest.raises(ValueError, match="RECOPS_TRAINER_TORCH_THREADS"):
        TrainerSettings.from_env({"RECOPS_TRAINER_TORCH_THREADS": "two"})
