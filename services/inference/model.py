"""The model that answers requests, and how it is held while others load.

A :class:`Scorer` turns purchase sequences into a score for every catalogue
item; :class:`ServingModel` pairs one with the catalogue it was trained on;
:class:`ModelHolder` swaps in a new version in one step, so a request sees
either the old model or the new one, never a mix, and keeps the version it
replaced loaded as a fallback.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Mapping
from typing import Protocol

import torch

PADDING_INDEX = 0


class Scorer(Protocol):
    """Scores every catalogue item for a batch of purchase sequences."""

    @property
    def device(self) -> torch.device:
        """Where the scores are computed."""
        ...

    def score(self, item_sequences: torch.Tensor) -> torch.Tensor:
        """``LongTensor[B, L]`` of left-padded item indices to ``[B, V]`` scores."""
        ...


class TorchScriptScorer:
    """Runs a TorchScript module in inference mode on one device."""

    def __init__(self, module: torch.jit.ScriptModule, device: torch.device) -> None:
        self._module = module
        self._device = device

    @property
    def device(self) -> torch.device:
        return self._device

    def score(self, item_sequences: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            scores: torch.Tensor = self._module(item_sequences.to(self._device))
        return scores


@dataclasses.dataclass(frozen=True, kw_only=True)
class ServingModel:
    """A loaded model version and the catalogue its indices refer to."""

    model_name: str
    version: str
    max_len: int
    item_ids: tuple[str, ...]
    item_descriptions: tuple[str, ...]
    popular_items: tuple[int, ...]
    scorer: Scorer
    index_of: Mapping[str, int] = dataclasses.field(init=False, repr=False)

    def __post_init__(self) -> None:
        index_of = {item: i for i, item in enumerate(self.item_ids) if i}
        object.__setattr__(self, "index_of", index_of)

    @property
    def item_count(self) -> int:
        """How many scores the model returns per sequence, padding included."""
        return len(self.item_ids)


class ModelHolder:
    """The model version in use and the one before it, replaced in one step.

    The previous version stays loaded so that a request the current one
    cannot score well can fall back to it.
    """

    def __init__(self) -> None:
        self._models: tuple[ServingModel | None, ServingModel | None] = (None, None)
        self._swap_lock = threading.Lock()

    @property
    def current(self) -> ServingModel | None:
        """The model to answer with now; ``None`` until one has loaded."""
        return self._models[0]

    @property
    def previous(self) -> ServingModel | None:
        """The model the current one replaced; ``None`` until a second loads."""
        return self._models[1]

    def serving(self) -> tuple[ServingModel | None, ServingModel | None]:
        """The current and previous models, as one consistent pair."""
        return self._models

    def swap(self, model: ServingModel) -> ServingModel | None:
        """Put ``model`` in service; return the one it replaces."""
        with self._swap_lock:
            replaced = self._models[0]
            self._models = (model, replaced)
        return replaced
