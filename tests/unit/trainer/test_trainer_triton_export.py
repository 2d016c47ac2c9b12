from pathlib import Path

import pytest
import torch
from google.protobuf import text_format
from trainer_snapshots import TINY_CONFIG
from trainer_versions import ITEM_IDS, MAX_LEN, MODEL_NAME, write_version
from tritonclient.grpc import model_config_pb2

from trainer.artifact import load_model_version
from trainer.errors import ArtifactIntegrityError
from trainer.model import SequentialRecommender, to_torchscript
from trainer.torchscript import deprecation_silenced
from trainer.triton_export import (
    CONFIG_FILE,
    TRITON_INPUT,
    TRITON_OUTPUT,
    triton_config,
    triton_model_dir,
    write_triton_repository,
)

VERSION = "20261203T190102Z-1a2b3c4d"


def parsed_config(text: str) -> model_config_pb2.ModelConfig:
    return text_format.Parse(text, model_config_pb2.ModelConfig())


def test_the_config_declares_the_models_shapes_for_the_libtorch_backend() -> None:
    config = parsed_config(
        triton_config(model_name=MODEL_NAME, max_len=50, item_count=3701)
    )

    assert config.name == MODEL_NAME
    assert config.platform == "pytorch_libtorch"
    assert config.max_batch_size > 0
    [model_input] = config.input
    [model_output] = config.output
    assert (model_input.name, list(model_input.dims)) == (TRITON_INPUT, [50])
    assert model_input.data_type == model_config_pb2.TYPE_INT64
    assert (model_output.name, list(model_output.dims)) == (TRITON_OUTPUT, [3701])
    assert model_output.data_type == model_config_pb2.TYPE_FP32


def test_every_version_carries_a_triton_repository_its_manifest_lists(
    tmp_path: Path,
) -> None:
    stored = write_version(tmp_path, VERSION)
    model_dir = triton_model_dir(stored.directory, MODEL_NAME)

    config = parsed_config((model_dir / CONFIG_FILE).read_text())

    assert list(config.input[0].dims) == [MAX_LEN]
    assert list(config.output[0].dims) == [len(ITEM_IDS)]
    relative = model_dir.relative_to(stored.directory).as_posix()
    assert {f"{relative}/{CONFIG_FILE}", f"{relative}/1/model.pt"} <= set(
        stored.manifest.files
    )


def test_the_exported_module_scores_like_the_artifacts_own(tmp_path: Path) -> None:
    torch.manual_seed(3)
    item_count = 9
    model = SequentialRecommender(item_count, TINY_CONFIG).eval()
    module = to_torchscript(model)
    write_triton_repository(
        tmp_path,
        module,
        model_name=MODEL_NAME,
        max_len=TINY_CONFIG.max_len,
        item_count=item_count,
    )
    batch = torch.randint(1, item_count, (3, TINY_CONFIG.max_len))
    batch[0, :5] = 0

    with deprecation_silenced():
        exported = torch.jit.load(  # type: ignore[no-untyped-call]
            str(triton_model_dir(tmp_path, MODEL_NAME) / "1" / "model.pt")
        )
    with torch.inference_mode():
        scores = exported(batch)
        expected = module(batch)

    assert scores.dtype == torch.float32
    assert scores.shape == (3, item_count)
    assert torch.allclose(scores, expected, atol=1e-6)


def test_a_changed_triton_file_makes_the_version_refused(tmp_path: Path) -> None:
    stored = write_version(tmp_path, VERSION)
    config = triton_model_dir(stored.directory, MODEL_NAME) / CONFIG_FILE
    config.write_text(config.read_text().replace("256", "1"))

    with pytest.raises(ArtifactIntegrityError, match=r"config\.pbtxt"):
        load_model_version(stored.directory)
