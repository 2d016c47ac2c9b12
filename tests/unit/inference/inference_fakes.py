"""Small catalogues, scorers, modules and records for the inference tests."""

from __future__ import annotations

import dataclasses
import threading
import warnings
from collections.abc import Callable, Sequence

import torch
from google.protobuf.message import Message as ProtoMessage
from prometheus_client import CollectorRegistry

from eventbus import encode
from eventbus.contracts import BehaviourEvent, BehaviourType, ModelReady
from inference.artifact import ArtifactMetadata
from inference.model import Scorer, ServingModel

# Real stock codes and descriptions from the retail data.
ITEM_IDS = ("", "85123A", "71053", "84406B", "84029G", "84029E", "22752", "21730")
DESCRIPTIONS = (
    "",
    "WHITE HANGING HEART T-LIGHT HOLDER",
    "WHITE METAL LANTERN",
    "CREAM CUPID HEARTS COAT HANGER",
    "KNITTED UNION FLAG HOT WATER BOTTLE",
    "RED WOOLLY HOTTIE WHITE HEART.",
    "SET 7 BABUSHKA NESTING BOXES",
    "GLASS STAR FROSTED T-LIGHT HOLDER",
)
MAX_LEN = 4

ArtifactMaker = Callable[..., ModelReady]


class FixedScores(torch.nn.Module):
    """Item ``i`` scores ``scores[i]`` whatever the shopper bought."""

    def __init__(self, scores: Sequence[float]) -> None:
        super().__init__()
        self.register_buffer("scores", torch.tensor(list(scores)))

    def forward(self, item_seq: torch.Tensor) -> torch.Tensor:
        return self.scores.unsqueeze(0).expand(item_seq.shape[0], -1)


class MeanOfPurchases(torch.nn.Module):
    """Scores items by the mean of the shopper's purchases; padding ignored."""

    def __init__(self, item_count: int, dim: int = 16, seed: int = 11) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        items = torch.randn(item_count, dim, generator=generator)
        items[0] = 0.0
        self.items = torch.nn.Parameter(items)
        self.mix = torch.nn.Parameter(torch.randn(dim, dim, generator=generator))
        self.bias = torch.nn.Parameter(torch.randn(item_count, generator=generator))

    def forward(self, item_seq: torch.Tensor) -> torch.Tensor:
        known = (item_seq != 0).unsqueeze(-1).to(self.items.dtype)
        summed = (self.items[item_seq] * known).sum(dim=1)
        shopper = torch.tanh(summed / known.sum(dim=1).clamp(min=1.0) @ self.mix)
        return shopper @ self.items.T + self.bias


def traced(module: torch.nn.Module, max_len: int) -> torch.jit.ScriptModule:
    example = torch.ones((2, max_len), dtype=torch.long)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return torch.jit.trace(module, example)  # type: ignore[no-untyped-call]


class RecordingScorer:
    """A scorer that returns fixed scores and keeps every input it saw."""

    def __init__(self, scores: Sequence[float]) -> None:
        self.scores = torch.tensor(list(scores))
        self.inputs: list[torch.Tensor] = []

    @property
    def device(self) -> torch.device:
        return torch.device("cpu")

    def score(self, item_sequences: torch.Tensor) -> torch.Tensor:
        self.inputs.append(item_sequences.clone())
        return self.scores.unsqueeze(0).expand(item_sequences.shape[0], -1)


class GatedScorer(RecordingScorer):
    """Scores only once a test opens its gate; says when a batch is waiting."""

    def __init__(self, scores: Sequence[float]) -> None:
        super().__init__(scores)
        self.gate = threading.Event()
        self.entered = threading.Event()

    def score(self, item_sequences: torch.Tensor) -> torch.Tensor:
        self.entered.set()
        self.gate.wait(30)
        return super().score(item_sequences)


class ScoreFunction:
    """A scorer that computes each batch's scores with a test's function."""

    def __init__(self, scores_of: Callable[[torch.Tensor], torch.Tensor]) -> None:
        self.scores_of = scores_of
        self.inputs: list[torch.Tensor] = []

    @property
    def device(self) -> torch.device:
        return torch.device("cpu")

    def score(self, item_sequences: torch.Tensor) -> torch.Tensor:
        self.inputs.append(item_sequences.clone())
        return self.scores_of(item_sequences)


def serving_model(
    scores: Sequence[float],
    *,
    version: str = "20261203T190102Z-aaaaaaaa",
    item_ids: Sequence[str] = ITEM_IDS,
    popular_items: Sequence[int] = (1, 2, 3),
    max_len: int = MAX_LEN,
    scorer: Scorer | None = None,
) -> ServingModel:
    return ServingModel(
        model_name="sequential-recommender",
        version=version,
        max_len=max_len,
        item_ids=tuple(item_ids),
        item_descriptions=tuple(f"item {i}" for i in item_ids),
        popular_items=tuple(popular_items),
        scorer=scorer if scorer is not None else RecordingScorer(scores),
    )


def metadata(version: str, **changes: object) -> ArtifactMetadata:
    fields: dict[str, object] = {
        "model_name": "sequential-recommender",
        "version": version,
        "max_len": MAX_LEN,
        "item_ids": ITEM_IDS,
        "item_descriptions": DESCRIPTIONS,
        "popular_items": (1, 2, 3),
    }
    return ArtifactMetadata(**{**fields, **changes})  # type: ignore[arg-type]


def scripted(module: torch.nn.Module) -> torch.jit.ScriptModule:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return torch.jit.script(module)


@dataclasses.dataclass
class FakeRecord:
    """A consumed record as a handler sees it."""

    payload: bytes | None
    header_pairs: list[tuple[str, bytes]]
    position: int = 0

    def value(self) -> bytes | None:
        return self.payload

    def headers(self) -> list[tuple[str, bytes]]:
        return self.header_pairs

    def partition(self) -> int:
        return 0

    def offset(self) -> int:
        return self.position


def ingested(
    user_id: str,
    item_id: str,
    *,
    kind: BehaviourType = BehaviourType.BEHAVIOUR_TYPE_PURCHASE,
    item_kind: str = "product",
    description: str = "",
) -> FakeRecord:
    event = BehaviourEvent(
        event_id=f"536365-{item_id}",
        type=kind,
        user_id=user_id,
        item_id=item_id,
        item_description=description,
        quantity=1,
        source="replay",
    )
    value, headers = encode(event)
    return FakeRecord(value, [*headers, ("item-kind", item_kind.encode())])


def announced(ready: ModelReady, position: int = 0) -> FakeRecord:
    value, headers = encode(ready)
    return FakeRecord(value, headers, position)


def count(registry: CollectorRegistry, name: str, **labels: str) -> float:
    """The current value of one metric sample; 0 when never incremented."""
    value = registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


class RecordedPublisher:
    """A topic writer in memory: keeps every ``(key, message)`` published."""

    def __init__(self) -> None:
        self.records: list[tuple[str, ProtoMessage]] = []
        self.closed = False

    def publish(self, key: str, message: ProtoMessage) -> None:
        self.records.append((key, message))

    def close(self, timeout_seconds: float) -> None:
        self.closed = True
