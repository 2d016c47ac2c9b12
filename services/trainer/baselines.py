"""Simple recommenders a model must beat, scored like the model.

Each scores every catalogue index for a batch of purchase histories, so the
evaluation ranks them exactly as it ranks the model:

- :class:`PopularityRecommender`: products by purchases over a training
  window, the same for everyone; with ``since`` it counts only the window's
  last days ("recent popularity").
- :class:`RepeatRecommender`: the customer's own products, most often bought
  first, ties to the most recent; then everything else by popularity.
- :class:`CoOccurrenceRecommender`: products bought by the same customers as
  the ones in the history, item-to-item, each row normalised so that a
  best-seller does not outweigh everything.
"""

from __future__ import annotations

import collections
from collections.abc import Iterable, Sequence

import numpy as np
import torch
from scipy import sparse

from trainer.sequences import PADDING_INDEX, ItemCatalogue
from trainer.snapshot import PurchaseLog

RECENT_DAYS = 30.0
CO_OCCURRENCE_HISTORY = 20
_SECONDS_PER_DAY = 86_400.0


def purchase_counts(
    log: PurchaseLog, catalogue: ItemCatalogue, since: float | None = None
) -> np.ndarray:
    """Purchases of each catalogue index in ``log``, at or after ``since``."""
    counts = np.zeros(len(catalogue), dtype=np.float64)
    for item_id, at in zip(log.item_ids, log.event_times, strict=True):
        index = catalogue.index.get(item_id)
        if index is not None and (since is None or at >= since):
            counts[index] += 1
    return counts


def popularity_scores(counts: np.ndarray) -> torch.Tensor:
    """Counts as scores, ties broken towards the lower (more popular) index."""
    order = np.arange(len(counts), dtype=np.float64)
    tie_break = 1.0 - order / max(len(counts), 1)
    return torch.from_numpy(counts + 1e-3 * tie_break).float()


class PopularityRecommender:
    """The same products for everyone: the most purchased ones."""

    def __init__(self, counts: np.ndarray) -> None:
        self._scores = popularity_scores(counts)

    @classmethod
    def all_time(cls, catalogue: ItemCatalogue) -> PopularityRecommender:
        """Popularity over the whole training window."""
        return cls(np.asarray(catalogue.purchase_counts, dtype=np.float64))

    @classmethod
    def recent(
        cls, log: PurchaseLog, catalogue: ItemCatalogue, days: float = RECENT_DAYS
    ) -> PopularityRecommender:
        """Popularity over the last ``days`` of ``log``, then over all of it."""
        if not log:
            return cls.all_time(catalogue)
        since = max(log.event_times) - days * _SECONDS_PER_DAY
        recent = purchase_counts(log, catalogue, since)
        overall = np.asarray(catalogue.purchase_counts, dtype=np.float64)
        return cls(recent + overall / (overall.max() + 1.0))

    def scores(self, histories: Sequence[list[int]]) -> torch.Tensor:
        expanded: torch.Tensor = self._scores.expand(len(histories), -1)
        return expanded


class RepeatRecommender:
    """A customer's own purchases again, most frequent and recent first."""

    def __init__(self, catalogue: ItemCatalogue) -> None:
        counts = np.asarray(catalogue.purchase_counts, dtype=np.float64)
        # Below 1, so any product bought once outranks every other product.
        self._fallback: torch.Tensor = popularity_scores(counts) / (counts.max() + 2.0)

    def scores(self, histories: Sequence[list[int]]) -> torch.Tensor:
        scores = self._fallback.repeat(len(histories), 1)
        for row, history in enumerate(histories):
            bought = collections.Counter(history)
            bought.pop(PADDING_INDEX, None)
            last = {item: position for position, item in enumerate(history, start=1)}
            items = list(bought)
            # The integer part counts purchases; the fraction is recency.
            scores[row, items] = torch.tensor(
                [bought[i] + 0.5 * last[i] / (len(history) + 1) for i in items]
            )
        return scores


class CoOccurrenceRecommender:
    """Item-to-item: what customers who bought these products also bought."""

    def __init__(self, matrix: sparse.csr_matrix, fallback: torch.Tensor) -> None:
        self._matrix = matrix
        self._fallback = fallback

    @classmethod
    def fit(
        cls, histories: Iterable[list[int]], catalogue: ItemCatalogue
    ) -> CoOccurrenceRecommender:
        """Count, for each pair of products, the customers who bought both."""
        size = len(catalogue)
        pairs: collections.Counter[tuple[int, int]] = collections.Counter()
        for history in histories:
            distinct = sorted(set(history) - {PADDING_INDEX})
            for n, first in enumerate(distinct):
                for second in distinct[n + 1 :]:
                    pairs[first, second] += 1
        rows = [a for a, _ in pairs] + [b for _, b in pairs]
        columns = [b for _, b in pairs] + [a for a, _ in pairs]
        values = list(pairs.values()) * 2
        counts = sparse.csr_matrix(
            (np.asarray(values, dtype=np.float32), (rows, columns)),
            shape=(size, size),
        )
        totals = np.asarray(counts.sum(axis=1)).ravel()
        totals[totals == 0] = 1.0
        normalised = sparse.diags(1.0 / totals).astype(np.float32) @ counts
        popularity = np.asarray(catalogue.purchase_counts, dtype=np.float64)
        fallback = popularity_scores(popularity) / (popularity.max() + 2.0) * 1e-3
        return cls(normalised.tocsr(), fallback)

    def scores(self, histories: Sequence[list[int]]) -> torch.Tensor:
        recent = [history[-CO_OCCURRENCE_HISTORY:] for history in histories]
        rows = [row for row, items in enumerate(recent) for _ in set(items)]
        columns = [item for items in recent for item in set(items)]
        query = sparse.csr_matrix(
            (np.ones(len(rows), dtype=np.float32), (rows, columns)),
            shape=(len(histories), self._matrix.shape[0]),
        )
        dense = np.asarray((query @ self._matrix).todense(), dtype=np.float32)
        return torch.from_numpy(dense) + self._fallback
