"""Small model versions written straight into a registry, for registry tests."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import torch

from trainer.artifact import ModelMetadata, StoredModel, write_model_version
from trainer.torchscript import deprecation_silenced

MODEL_NAME = "sequential-recommender"
ITEM_IDS = ["", "85123A", "71053", "84406B", "22423", "47566"]
MAX_LEN = 4


class TinyRecommender(torch.nn.Module):
    """Scores each product by a bias and the last purchase's affinity row."""

    def __init__(self, seed: int) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        count = len(ITEM_IDS)
        self.affinity = torch.nn.Parameter(
            torch.randn(count, count, generator=generator)
        )

    def forward(self, item_seq: torch.Tensor) -> torch.Tensor:
        scores = self.affinity[item_seq[:, -1]]
        padding = torch.full_like(scores[:, :1], -1e9)
        return torch.cat([padding, scores[:, 1:]], dim=1)


def write_version(
    registry: Path, version: str, *, seed: int = 1, ndcg: float = 0.2
) -> StoredModel:
    """Store a tiny scripted model as ``version`` in a local registry."""
    metadata = ModelMetadata(
        model_name=MODEL_NAME,
        version=version,
        max_len=MAX_LEN,
        item_ids=ITEM_IDS,
        item_descriptions=[""] + [f"PRODUCT {i}" for i in range(1, len(ITEM_IDS))],
        popular_items=[1, 2],
    )
    with deprecation_silenced():
        module = torch.jit.script(TinyRecommender(seed))
    return write_model_version(
        registry,
        module,
        metadata,
        snapshot_id="snap-1",
        metrics={"ndcg@10": ndcg},
        config={"max_len": MAX_LEN},
        training={"epochs": 1},
        created_at=datetime(2026, 12, 3, 19, 1, 2, tzinfo=UTC),
    )
