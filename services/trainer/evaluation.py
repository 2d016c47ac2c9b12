"""Offline quality of a recommender against the whole catalogue.

For every customer who bought something in the evaluated window and has a
known purchase before it, the query is the purchase history before the window
and the relevant set is the distinct products bought in the window. Each
recommender ranks the full catalogue (no sampled negatives); the top
``cutoff`` are scored with binary relevance and averaged over customers:

- ``hit_rate@k``: share of customers with at least one relevant product;
- ``precision@k``: relevant products among the k, divided by k;
- ``recall@k``: relevant products among the k, divided by the relevant count;
- ``f1@k``: harmonic mean of that customer's precision and recall (0 if both
  are 0), averaged;
- ``ndcg@k``: DCG with gain 1/log2(rank + 1), divided by the DCG of a perfect
  ranking of ``min(k, relevant count)`` products.
"""

from __future__ import annotations

import collections
import dataclasses
import math
from collections.abc import Callable, Hashable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from typing import Protocol

import torch

from trainer.sequences import PADDING_INDEX, ItemCatalogue, left_pad
from trainer.snapshot import PurchaseLog

METRIC_NAMES = ("hit_rate", "precision", "recall", "f1", "ndcg")
ScoreFunction = Callable[[torch.Tensor], torch.Tensor]


@dataclasses.dataclass(frozen=True)
class EvaluationCase:
    """One customer's query history and the products they went on to buy."""

    user_id: str
    history: list[int]
    relevant: frozenset[str]


def evaluation_cases(
    histories: Mapping[str, list[int]], window: PurchaseLog
) -> list[EvaluationCase]:
    """Cases for the customers who bought in ``window`` and have a history."""
    bought: dict[str, set[str]] = collections.defaultdict(set)
    for user_id, item_id in zip(window.user_ids, window.item_ids, strict=True):
        bought[user_id].add(item_id)
    return [
        EvaluationCase(user_id, histories[user_id], frozenset(bought[user_id]))
        for user_id in sorted(bought)
        if histories.get(user_id)
    ]


@dataclasses.dataclass(frozen=True)
class CustomerScores:
    """The ranking metrics of one customer's recommendations."""

    hit_rate: float
    precision: float
    recall: float
    f1: float
    ndcg: float


def score_ranking(
    recommended: Sequence[Hashable], relevant: AbstractSet[Hashable], cutoff: int
) -> CustomerScores:
    """Binary-relevance metrics of the first ``cutoff`` recommendations."""
    if not relevant:
        raise ValueError("a ranking needs at least one relevant item to be scored")
    seen: set[Hashable] = set()
    hits = 0
    dcg = 0.0
    for rank, item in enumerate(recommended[:cutoff], start=1):
        if item in relevant and item not in seen:
            hits += 1
            dcg += 1.0 / math.log2(rank + 1)
        seen.add(item)

    ideal = sum(
        1.0 / math.log2(rank + 1) for rank in range(1, 1 + min(cutoff, len(relevant)))
    )
    precision = hits / cutoff
    recall = hits / len(relevant)
    f1 = 2 * precision * recall / (precision + recall) if hits else 0.0
    return CustomerScores(
        hit_rate=float(hits > 0),
        precision=precision,
        recall=recall,
        f1=f1,
        ndcg=dcg / ideal,
    )


@dataclasses.dataclass(frozen=True)
class RankingQuality:
    """Ranking metrics averaged over the customers evaluated."""

    cutoff: int
    customers: int
    hit_rate: float
    precision: float
    recall: float
    f1: float
    ndcg: float

    @classmethod
    def mean_of(cls, scores: Sequence[CustomerScores], cutoff: int) -> RankingQuality:
        """The average of per-customer scores; all zero when there are none."""
        count = len(scores)

        def mean(name: str) -> float:
            return sum(getattr(s, name) for s in scores) / count if count else 0.0

        return cls(
            cutoff=cutoff,
            customers=count,
            **{name: mean(name) for name in METRIC_NAMES},
        )

    def as_metrics(self, prefix: str = "") -> dict[str, float]:
        """The metrics keyed like ``ndcg@10``, each name after ``prefix``."""
        return {
            f"{prefix}{name}@{self.cutoff}": getattr(self, name)
            for name in METRIC_NAMES
        }


class Recommender(Protocol):
    """Anything that ranks catalogue indices for purchase histories."""

    def recommend(self, histories: Sequence[list[int]], count: int) -> list[list[int]]:
        """The ``count`` best catalogue indices for each history, best first."""
        ...


@dataclasses.dataclass(frozen=True)
class PopularityRecommender:
    """The baseline: the products most purchased in training, for everyone."""

    catalogue: ItemCatalogue

    def recommend(self, histories: Sequence[list[int]], count: int) -> list[list[int]]:
        popular = self.catalogue.popular_items(count)
        return [list(popular) for _ in histories]


@dataclasses.dataclass(frozen=True)
class ScoringRecommender:
    """Ranks by a model's scores: eager, or the TorchScript artifact."""

    score: ScoreFunction
    max_len: int
    batch_size: int = 512

    def recommend(self, histories: Sequence[list[int]], count: int) -> list[list[int]]:
        ranked: list[list[int]] = []
        for start in range(0, len(histories), self.batch_size):
            batch = histories[start : start + self.batch_size]
            item_seq = torch.tensor([left_pad(h, self.max_len) for h in batch])
            with torch.inference_mode():
                scores = self.score(item_seq)
                scores[:, PADDING_INDEX] = -math.inf
                best = scores.topk(count, dim=1).indices
            ranked.extend(best.tolist())
        return ranked


def evaluate(
    recommender: Recommender,
    cases: Sequence[EvaluationCase],
    catalogue: ItemCatalogue,
    cutoff: int,
) -> RankingQuality:
    """Average ranking quality of ``recommender`` over ``cases``."""
    ranked = recommender.recommend([case.history for case in cases], cutoff)
    scores = [
        score_ranking([catalogue.item_ids[i] for i in indices], case.relevant, cutoff)
        for indices, case in zip(ranked, cases, strict=True)
    ]
    return RankingQuality.mean_of(scores, cutoff)


def quality_table(rows: Mapping[str, RankingQuality]) -> str:
    """A fixed-width table, one recommender a row, for people to read."""
    cutoff = next(iter(rows.values())).cutoff
    names = [f"{name}@{cutoff}" for name in METRIC_NAMES]
    width = max(len("recommender"), *(len(name) for name in rows))
    header = f"{'recommender':<{width}}  {'customers':>9}  " + "  ".join(
        f"{name:>12}" for name in names
    )
    lines = [header, "-" * len(header)]
    for label, quality in rows.items():
        values = "  ".join(f"{getattr(quality, n):>12.4f}" for n in METRIC_NAMES)
        lines.append(f"{label:<{width}}  {quality.customers:>9}  {values}")
    return "\n".join(lines)
