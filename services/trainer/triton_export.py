"""The Triton export inside every model version.

A version carries a Triton model repository beside ``model.pt``::

    triton/<model_name>/config.pbtxt
    triton/<model_name>/1/model.pt

Point Triton's ``--model-repository`` at ``triton/``. The model is the same
TorchScript module, saved without the ``recops.json`` extra file, served by
the ``pytorch_libtorch`` backend: input ``INPUT__0`` (INT64, ``[max_len]``
per row, left-padded catalogue indices), output ``OUTPUT__0`` (FP32,
``[item_count]`` scores per row). Triton batches rows up to
``max_batch_size``; the catalogue order is in ``model.pt``'s ``recops.json``.
"""

from __future__ import annotations

from pathlib import Path

import torch

from trainer.torchscript import deprecation_silenced

TRITON_DIR = "triton"
TRITON_MAX_BATCH_SIZE = 256
TRITON_INPUT = "INPUT__0"
TRITON_OUTPUT = "OUTPUT__0"
CONFIG_FILE = "config.pbtxt"


def triton_config(
    *,
    model_name: str,
    max_len: int,
    item_count: int,
    max_batch_size: int = TRITON_MAX_BATCH_SIZE,
) -> str:
    """``config.pbtxt`` for a recommender scoring ``item_count`` products."""
    return (
        f'name: "{model_name}"\n'
        'platform: "pytorch_libtorch"\n'
        f"max_batch_size: {max_batch_size}\n"
        "input [\n"
        "  {\n"
        f'    name: "{TRITON_INPUT}"\n'
        "    data_type: TYPE_INT64\n"
        f"    dims: [ {max_len} ]\n"
        "  }\n"
        "]\n"
        "output [\n"
        "  {\n"
        f'    name: "{TRITON_OUTPUT}"\n'
        "    data_type: TYPE_FP32\n"
        f"    dims: [ {item_count} ]\n"
        "  }\n"
        "]\n"
        "dynamic_batching { }\n"
    )


def triton_model_dir(version_dir: Path, model_name: str) -> Path:
    """Where a version keeps its Triton model: ``triton/<model_name>``."""
    return version_dir / TRITON_DIR / model_name


def write_triton_repository(
    version_dir: Path,
    module: torch.jit.ScriptModule,
    *,
    model_name: str,
    max_len: int,
    item_count: int,
) -> Path:
    """Write the Triton model repository into a version being staged."""
    model_dir = triton_model_dir(version_dir, model_name)
    (model_dir / "1").mkdir(parents=True)
    config = triton_config(
        model_name=model_name, max_len=max_len, item_count=item_count
    )
    (model_dir / CONFIG_FILE).write_text(config)
    with deprecation_silenced():
        torch.jit.save(module, str(model_dir / "1" / "model.pt"))
    return version_dir / TRITON_DIR
