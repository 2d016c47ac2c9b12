"""Search quality against graded judgments, measured two ways as in ESCI.

Both use DCG with linear gains, ``sum(gain / log2(rank + 1))``, divided by
the DCG of the judged products in their best order; the ESCI gains are
E 1.0, S 0.1, C 0.01, I 0.

- retrieval, ``ndcg@k``: the ranker orders the whole corpus; the first ``k``
  are scored, a product nobody judged counting as gain 0;
- re-ranking, ``rerank_ndcg``: the ranker orders only the query's judged
  products, and the whole list is scored (the ESCI ranking task).

A query whose judged products all have gain 0 has no ideal ranking and is
left out of both averages. Equal scores are broken by product id, never by
file order, which may follow the labels.

Whenever anything is fitted (the hybrid's weight and feedback), queries are
split into train and test by :func:`split_queries`, and only the test
queries are reported.
"""

from __future__ import annotations

import dataclasses
import math
import random
from collections.abc import Mapping, Sequence

import numpy as np
import numpy.typing as npt

from trainer.search.corpus import Judgments, ProductCorpus
from trainer.search.rankers import (
    Feedback,
    FeedbackRanker,
    Ranker,
    Scores,
    fuse,
)

DEFAULT_CUTOFF = 10


def dcg(gains: Sequence[float]) -> float:
    """Discounted cumulative gain of gains listed in rank order."""
    return sum(gain / math.log2(rank + 1) for rank, gain in enumerate(gains, 1))


def ndcg(
    ranked_gains: Sequence[float], judged_gains: Sequence[float], cutoff: int | None
) -> float | None:
    """DCG of the first ``cutoff`` ranked gains over the best possible.

    ``judged_gains`` are every judged product's gains, in any order; None
    when none is positive. ``cutoff`` None scores the whole ranking.
    """
    ideal = dcg(sorted(judged_gains, reverse=True)[:cutoff])
    if ideal <= 0.0:
        return None
    return dcg(list(ranked_gains)[:cutoff]) / ideal


@dataclasses.dataclass(frozen=True)
class SearchQuality:
    """A ranker's mean quality over a set of queries."""

    queries: int
    cutoff: int
    ndcg: float
    rerank_ndcg: float

    def as_metrics(self, prefix: str = "") -> dict[str, float]:
        """The figures keyed like ``ndcg@10`` and ``rerank_ndcg``."""
        return {
            f"{prefix}ndcg@{self.cutoff}": self.ndcg,
            f"{prefix}rerank_ndcg": self.rerank_ndcg,
        }


class Evaluation:
    """Scores rankers' outputs against the judgments of one corpus."""

    def __init__(self, corpus: ProductCorpus, judgments: Judgments) -> None:
        self.corpus = corpus
        self.judgments = judgments
        self.position = {pid: n for n, pid in enumerate(corpus.product_ids)}
        missing = {
            pid
            for query in judgments.queries
            for pid in judgments.labels[query]
            if pid not in self.position
        }
        if missing:
            raise ValueError(f"{len(missing)} judged products are not in the corpus")
        by_id = sorted(range(len(corpus)), key=lambda n: corpus.product_ids[n])
        self.id_rank = np.empty(len(corpus), dtype=np.int64)
        self.id_rank[by_id] = np.arange(len(corpus))

    def best_first(
        self, scores: npt.NDArray[np.float64], count: int
    ) -> npt.NDArray[np.int64]:
        """The ``count`` best product positions by score, ties by product id."""
        if count < len(scores):
            kth = np.partition(scores, len(scores) - count)[len(scores) - count]
            candidates = np.flatnonzero(scores >= kth)
        else:
            candidates = np.arange(len(scores))
        order = np.lexsort((self.id_rank[candidates], -scores[candidates]))
        best: npt.NDArray[np.int64] = candidates[order][:count]
        return best

    def retrieval_ndcg(self, query: str, scores: Scores, cutoff: int) -> float | None:
        """nDCG@cutoff of one query's scores over the whole corpus."""
        gains = self.judgments.gains(query)
        top = self.best_first(scores, cutoff)
        ranked = [gains.get(self.corpus.product_ids[n], 0.0) for n in top]
        return ndcg(ranked, list(gains.values()), cutoff)

    def rerank_ndcg(self, query: str, scores: Scores) -> float | None:
        """nDCG of one query's judged products, ordered by ``scores``."""
        gains = self.judgments.gains(query)
        judged = np.array([self.position[pid] for pid in gains], dtype=np.int64)
        order = np.lexsort((self.id_rank[judged], -scores[judged]))
        ranked = [gains[self.corpus.product_ids[judged[n]]] for n in order]
        return ndcg(ranked, ranked, None)

    def quality(
        self, ranker: Ranker, queries: Sequence[str], cutoff: int = DEFAULT_CUTOFF
    ) -> SearchQuality:
        """Mean retrieval and re-ranking nDCG of ``ranker`` over ``queries``."""
        if not queries:
            raise ValueError("no query to evaluate")
        scores = ranker.score_queries(queries)
        retrieval: list[float] = []
        reranking: list[float] = []
        for query, row in zip(queries, scores, strict=True):
            at_cutoff = self.retrieval_ndcg(query, row, cutoff)
            whole = self.rerank_ndcg(query, row)
            if at_cutoff is not None and whole is not None:
                retrieval.append(at_cutoff)
                reranking.append(whole)
        return SearchQuality(
            queries=len(retrieval),
            cutoff=cutoff,
            ndcg=float(np.mean(retrieval)) if retrieval else 0.0,
            rerank_ndcg=float(np.mean(reranking)) if reranking else 0.0,
        )


def split_queries(
    queries: Sequence[str], *, test_share: float, seed: int
) -> tuple[list[str], list[str]]:
    """Train and test queries: a seeded shuffle of the sorted queries, cut.

    Each query lands on exactly one side; the same queries and seed always
    give the same split, whatever order they came in.
    """
    if not 0.0 < test_share < 1.0:
        raise ValueError("test_share must be between 0 and 1")
    unique = sorted(set(queries))
    if len(unique) < 2:
        raise ValueError("a split needs at least two distinct queries")
    random.Random(seed).shuffle(unique)
    test_count = min(len(unique) - 1, max(1, round(len(unique) * test_share)))
    return sorted(unique[test_count:]), sorted(unique[:test_count])


# Tried when fitting the hybrid; None ranks once, without feedback.
FEEDBACK_TRIED: tuple[Feedback | None, ...] = (
    None,
    *(
        Feedback(products=products, weight=weight)
        for products in (3, 5, 10)
        for weight in (1.0, 2.0, 4.0)
    ),
)
WEIGHT_STEPS = 20


@dataclasses.dataclass(frozen=True)
class HybridFit:
    """The hybrid's dense weight and feedback, as fitted."""

    dense_weight: float
    feedback: Feedback | None


class HybridGrid:
    """Retrieval nDCG of each hybrid setting tried, query by query.

    The settings are every dense weight ``0, 1/20, ..., 1`` (or only
    ``weights``) with each of :data:`FEEDBACK_TRIED`. A query's figure
    depends on that query alone, so one grid over all queries serves any
    split: :meth:`best` reads only the queries it is given.
    """

    def __init__(
        self,
        evaluation: Evaluation,
        dense: FeedbackRanker,
        lexical: Ranker,
        queries: Sequence[str],
        *,
        cutoff: int = DEFAULT_CUTOFF,
        weights: Sequence[float] | None = None,
    ) -> None:
        if weights is None:
            weights = [step / WEIGHT_STEPS for step in range(WEIGHT_STEPS + 1)]
        self.queries = list(queries)
        self.fits: list[HybridFit] = []
        rows: list[list[float]] = []
        dense_scores = dense.score_queries(self.queries)
        lexical_scores = lexical.score_queries(self.queries)
        for weight in weights:
            first = fuse(dense_scores, lexical_scores, weight)
            for feedback in FEEDBACK_TRIED:
                fused = first
                if feedback is not None:
                    moved = dense.score_with_feedback(self.queries, first, feedback)
                    fused = fuse(moved, lexical_scores, weight)
                self.fits.append(HybridFit(weight, feedback))
                rows.append(self._per_query(evaluation, fused, cutoff))
        self.ndcg = np.array(rows, dtype=np.float64)

    def _per_query(
        self, evaluation: Evaluation, scores: Scores, cutoff: int
    ) -> list[float]:
        """Each query's nDCG, NaN where it has none."""
        values = []
        for query, row in zip(self.queries, scores, strict=True):
            value = evaluation.retrieval_ndcg(query, row, cutoff)
            values.append(math.nan if value is None else value)
        return values

    def best(self, queries: Sequence[str]) -> HybridFit:
        """The setting with the best mean nDCG over ``queries``.

        Ties go to the smaller weight, then to no feedback or less of it.
        """
        position = {query: n for n, query in enumerate(self.queries)}
        columns = self.ndcg[:, [position[query] for query in queries]]
        judged = ~np.isnan(columns)
        if not judged.any():
            return self.fits[0]
        sums = np.where(judged, columns, 0.0).sum(axis=1)
        means = sums / judged.sum(axis=1)
        best = int(np.flatnonzero(means >= means.max() - 1e-12)[0])
        return self.fits[best]


def fit_hybrid(
    evaluation: Evaluation,
    dense: FeedbackRanker,
    lexical: Ranker,
    train_queries: Sequence[str],
    *,
    cutoff: int = DEFAULT_CUTOFF,
    weights: Sequence[float] | None = None,
) -> HybridFit:
    """The dense weight and feedback with the best train retrieval nDCG."""
    grid = HybridGrid(
        evaluation, dense, lexical, train_queries, cutoff=cutoff, weights=weights
    )
    return grid.best(train_queries)


def quality_table(rows: Mapping[str, SearchQuality]) -> str:
    """A fixed-width table, one ranker and query set a row, for people."""
    cutoff = next(iter(rows.values())).cutoff
    width = max(len("ranker"), *(len(name) for name in rows))
    header = (
        f"{'ranker':<{width}}  {'queries':>7}  {f'ndcg@{cutoff}':>10}  "
        f"{'rerank_ndcg':>11}"
    )
    lines = [header, "-" * len(header)]
    for label, quality in rows.items():
        lines.append(
            f"{label:<{width}}  {quality.queries:>7}  {quality.ndcg:>10.4f}  "
            f"{quality.rerank_ndcg:>11.4f}"
        )
    return "\n".join(lines)
