"""Fixtures for the inference unit tests: artifacts on disk and metrics."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from inference_fakes import ITEM_IDS, ArtifactMaker, FixedScores, metadata, scripted
from prometheus_client import CollectorRegistry

from eventbus.contracts import ModelReady
from inference.artifact import write_artifact
from inference.metrics import InferenceMetrics


@pytest.fixture
def make_artifact(tmp_path: Path) -> ArtifactMaker:
    """Write a tiny TorchScript artifact; return the ModelReady announcing it."""

    def make(
        version: str = "20261203T190102Z-1a2b3c4d",
        module: torch.nn.Module | None = None,
        **metadata_changes: object,
    ) -> ModelReady:
        scores = [float(n) for n in range(len(ITEM_IDS))]
        module = module if module is not None else FixedScores(scores)
        path = tmp_path / "registry" / version / "model.pt"
        return write_artifact(
            scripted(module), metadata(version, **metadata_changes), path
        )

    return make


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def metrics(registry: CollectorRegistry) -> InferenceMetrics:
    return InferenceMetrics(registry)
