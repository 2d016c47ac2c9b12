"""Offline quality of a recommender against the whole catalogue.

For every customer who bought something in the evaluated window and has a
known purchase before it, the query is the purchase history before the window
and the relevant set is the distinct products bought in the window. Each
recommender scores the full catalogue (no sampled negatives); the top ``k``
are judged with binary relevance and averaged over customers:

- ``hit_rate@k``: share of customers with at least one relevant product;
- ``precision@k``: relevant products among the k, divided by k;
- ``recall@k``: relevant products among the k, divided by the relevant count;
- ``f1@k``: harmonic mean of that customer's precision and recall (0 if both
  are 0), averaged;
- ``ndcg@k``: DCG with gain 1/log2(rank + 1), divided by the DCG of a perfect
  ranking of ``min(k, relevant count)`` products;
- ``coverage@k``: distinct products in anyone's top k, as a share of the
  catalogue.

Customers of this shop buy the same things again and again, so quality is
measured two ways (:class:`Candidates`): with repeats allowed, the way
Recommend serves, and for new items only, where a customer's past purchases
are neither recommended nor counted as relevant. The quality gate uses the
first; the second shows what a model adds beyond "buy it again".
"""

from __future__ import annotations

import collections
import dataclasses
import enum
import math
from collections.abc import Callable, Hashable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from typing import Protocol

import torch

from trainer.sequences import PADDING_INDEX, ItemCatalogue, left_pad
from trainer.snapshot import PurchaseLog

METRIC_NAMES = ("hit_rate", "precision", "recall", "f1", "ndcg", "coverage")
REPORTED_CUTOFFS = (10, 20)
SCORING_BATCH = 512
ScoreFunction = Callable[[torch.Tensor], torch.Tensor]


class Candidates(enum.StrEnum):
    """Which products count: any, or only those new to the customer."""

    REPEATS = "repeats"
    NEW_ITEMS = "new_items"

    @property
    def metric_prefix(self) -> str:
        """How metric names of this kind begin: nothing for repeats."""
        return "" if self is Candidates.REPEATS else f"{self.value}."


# The measure the quality gate and epoch selection use.
GATE_CANDIDATES = Candidates.REPEATS


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
    """Ranking metrics at one cutoff, averaged over the customers evaluated."""

    cutoff: int
    customers: int
    hit_rate: float
    precision: float
    recall: float
    f1: float
    ndcg: float
    coverage: float

    @classmethod
    def mean_of(
        cls, scores: Sequence[CustomerScores], cutoff: int, coverage: float = 0.0
    ) -> RankingQuality:
        """The average of per-customer scores; all zero when there are none."""
        count = len(scores)

        def mean(name: str) -> float:
            return sum(getattr(s, name) for s in scores) / count if count else 0.0

        return cls(
            cutoff=cutoff,
            customers=count,
            hit_rate=mean("hit_rate"),
            precision=mean("precision"),
            recall=mean("recall"),
            f1=mean("f1"),
            ndcg=mean("ndcg"),
            coverage=coverage,
        )


@dataclasses.dataclass(frozen=True)
class Evaluation:
    """One recommender's quality for one kind of candidates, at every cutoff."""

    candidates: Candidates
    at: dict[int, RankingQuality]

    @property
    def customers(self) -> int:
        return next(iter(self.at.values())).customers

    def as_metrics(self, prefix: str = "") -> dict[str, float]:
        """Metrics keyed like ``ndcg@10`` or ``new_items.ndcg@10``, after ``prefix``."""
        start = prefix + self.candidates.metric_prefix
        return {
            f"{start}{name}@{cutoff}": getattr(quality, name)
            for cutoff, quality in self.at.items()
            for name in METRIC_NAMES
        }


class Recommender(Protocol):
    """Anything that scores every catalogue index for purchase histories."""

    def scores(self, histories: Sequence[list[int]]) -> torch.Tensor:
        """Scores ``[B, V]``, higher is better; index 0 is ignored."""
        ...


@dataclasses.dataclass(frozen=True)
class ScoringRecommender:
    """Scores with a model: eager, or the TorchScript artifact."""

    score: ScoreFunction
    max_len: int

    def scores(self, histories: Sequence[list[int]]) -> torch.Tensor:
        item_seq = torch.tensor([left_pad(h, self.max_len) for h in histories])
        with torch.inference_mode():
            return self.score(item_seq)


def recommend(
    recommender: Recommender,
    histories: Sequence[list[int]],
    count: int,
    *,
    exclude_history: bool = False,
    batch_size: int = SCORING_BATCH,
) -> list[list[int]]:
    """The ``count`` best catalogue indices for each history, best first.

    Padding is never recommended, nor, with ``exclude_history``, anything the
    customer bought before.
    """
    ranked: list[list[int]] = []
    for start in range(0, len(histories), batch_size):
        batch = histories[start : start + batch_size]
        scores = recommender.scores(batch).detach().float().clone()
        scores[:, PADDING_INDEX] = -math.inf
        if exclude_history:
            rows = [row for row, history in enumerate(batch) for _ in history]
            columns = [item for history in batch for item in history]
            scores[rows, columns] = -math.inf
        take = min(count, scores.shape[1] - 1)
        values, indices = scores.topk(take, dim=1)
        for row_values, row_indices in zip(
            values.tolist(), indices.tolist(), strict=True
        ):
            ranked.append(
                [
                    i
                    for v, i in zip(row_values, row_indices, strict=True)
                    if v != -math.inf
                ]
            )
    return ranked


def evaluate(
    recommender: Recommender,
    cases: Sequence[EvaluationCase],
    catalogue: ItemCatalogue,
    cutoffs: Sequence[int] = REPORTED_CUTOFFS,
    candidates: Candidates = GATE_CANDIDATES,
    *,
    batch_size: int = SCORING_BATCH,
) -> Evaluation:
    """Quality of ``recommender`` over ``cases`` at each of ``cutoffs``.

    For :attr:`Candidates.NEW_ITEMS`, customers whose window holds nothing
    new to them are left out.
    """
    if not cutoffs or min(cutoffs) < 1:
        raise ValueError("cutoffs must be positive")
    new_only = candidates is Candidates.NEW_ITEMS
    queries: list[list[int]] = []
    relevant_sets: list[frozenset[str]] = []
    for case in cases:
        relevant = case.relevant
        if new_only:
            relevant = relevant - {catalogue.item_ids[i] for i in case.history}
        if relevant:
            queries.append(case.history)
            relevant_sets.append(relevant)

    ranked = recommend(
        recommender,
        queries,
        max(cutoffs),
        exclude_history=new_only,
        batch_size=batch_size,
    )
    products = len(catalogue) - 1
    at: dict[int, RankingQuality] = {}
    for cutoff in sorted(cutoffs):
        shown = {i for indices in ranked for i in indices[:cutoff]}
        scores = [
            score_ranking([catalogue.item_ids[i] for i in indices], relevant, cutoff)
            for indices, relevant in zip(ranked, relevant_sets, strict=True)
        ]
        coverage = len(shown) / products if products else 0.0
        at[cutoff] = RankingQuality.mean_of(scores, cutoff, coverage)
    return Evaluation(candidates, at)


def quality_table(rows: Mapping[str, Evaluation], cutoff: int) -> str:
    """A fixed-width table, one recommender a row, for people to read."""
    names = [f"{name}@{cutoff}" for name in METRIC_NAMES]
    width = max(len("recommender"), *(len(name) for name in rows))
    header = f"{'recommender':<{width}}  {'customers':>9}  " + "  ".join(
        f"{name:>11}" for name in names
    )
    lines = [header, "-" * len(header)]
    for label, evaluation in rows.items():
        quality = evaluation.at[cutoff]
        values = "  ".join(f"{getattr(quality, n):>11.4f}" for n in METRIC_NAMES)
        lines.append(f"{label:<{width}}  {quality.customers:>9}  {values}")
    return "\n".join(lines)
