"""Ranks products for a shopper: the serving model, or popularity without one.

A shopper's remembered purchases become a left-padded index sequence for the
model; padding and excluded items are masked before the top ``k`` are taken.
Popularity answers when no model has loaded yet or the shopper has no known
purchases: live purchase counts first, then the model's own popular items.
"""

from __future__ import annotations

import dataclasses
import enum
import math
from collections.abc import Collection, Iterator, Mapping, Sequence

import torch

from inference.errors import InferenceError, NotReadyError
from inference.history import PurchaseHistory
from inference.model import PADDING_INDEX, ModelHolder, ServingModel
from inference.validation import MAX_K, check_recommend

# Every row's top items are taken to this depth, the most a caller may ask for.
RANKING_DEPTH = MAX_K
POPULARITY_VERSION = "popularity"


class FallbackReason(enum.StrEnum):
    """Why popularity answered instead of the model; a bounded metric label."""

    NO_MODEL = "no_model"
    NO_HISTORY = "no_history"


@dataclasses.dataclass(frozen=True, kw_only=True)
class RecommendedItem:
    """One product in an answer, with the score that placed it."""

    item_id: str
    score: float
    description: str


@dataclasses.dataclass(frozen=True, kw_only=True)
class Recommendation:
    """An answer to Recommend, best item first."""

    items: tuple[RecommendedItem, ...]
    model_version: str
    fallback_reason: FallbackReason | None = None

    @property
    def fallback(self) -> bool:
        """True when popularity answered instead of the serving model."""
        return self.fallback_reason is not None


@dataclasses.dataclass(frozen=True, kw_only=True)
class ShopperQuery:
    """One checked Recommend request, named by its request id."""

    request_id: str
    user_id: str
    k: int
    exclude: frozenset[str] = frozenset()


# Answers to a batch of queries, or why one could not be answered, by request id.
RankedBatch = dict[str, Recommendation | InferenceError]


class Recommender:
    """Answers Recommend from the model in service and the purchase history."""

    def __init__(self, holder: ModelHolder, history: PurchaseHistory) -> None:
        self._holder = holder
        self._history = history

    def can_answer(self) -> bool:
        """Whether a model has loaded or any purchase has been seen."""
        return self._holder.current is not None or bool(self._history.best_sellers())

    def recommend(
        self, user_id: str, k: int, exclude: Collection[str] = ()
    ) -> Recommendation:
        """The ``k`` products ``user_id`` is most likely to buy next."""
        check_recommend(user_id, k, exclude)
        query = ShopperQuery(
            request_id="", user_id=user_id, k=k, exclude=frozenset(exclude)
        )
        answer = self.recommend_batch([query])[query.request_id]
        if isinstance(answer, InferenceError):
            raise answer
        return answer

    def recommend_batch(self, queries: Sequence[ShopperQuery]) -> RankedBatch:
        """Answers for several checked queries, scored together, by request id.

        A shopper's answer does not depend on who else is in the batch: every
        sequence is padded to the model's full length, and every row's top
        items are taken to the same depth.
        """
        model = self._holder.current
        if model is None:
            return {
                query.request_id: self._popular(None, query, FallbackReason.NO_MODEL)
                for query in queries
            }

        answers: RankedBatch = {}
        sequences: dict[str, list[int]] = {}
        for query in queries:
            sequence = model_sequence(model, self._history.recent(query.user_id))
            if sequence:
                sequences[query.request_id] = sequence
            else:
                answers[query.request_id] = self._popular(
                    model, query, FallbackReason.NO_HISTORY
                )
        scored = [query for query in queries if query.request_id in sequences]
        if scored:
            answers.update(self._ranked_by_model(model, scored, sequences))
        return answers

    def _ranked_by_model(
        self,
        model: ServingModel,
        queries: Sequence[ShopperQuery],
        sequences: Mapping[str, list[int]],
    ) -> RankedBatch:
        item_seq = torch.zeros((len(queries), model.max_len), dtype=torch.long)
        for row, query in enumerate(queries):
            sequence = sequences[query.request_id]
            item_seq[row, model.max_len - len(sequence) :] = torch.tensor(sequence)
        scores = model.scorer.score(item_seq).float()

        masked = torch.nan_to_num(scores, nan=-math.inf)
        masked[:, PADDING_INDEX] = -math.inf
        rows, columns = excluded_cells(model, queries)
        if rows:
            device = masked.device
            masked[
                torch.tensor(rows, device=device), torch.tensor(columns, device=device)
            ] = -math.inf
        # One depth for every row, so ties break the same in any batch.
        top = torch.topk(masked, min(RANKING_DEPTH, model.item_count), dim=1)
        values, indices = top.values.tolist(), top.indices.tolist()

        return {
            query.request_id: Recommendation(
                items=self._items(model, values[row], indices[row], query.k),
                model_version=model.version,
            )
            for row, query in enumerate(queries)
        }

    @staticmethod
    def _items(
        model: ServingModel, scores: list[float], indices: list[int], k: int
    ) -> tuple[RecommendedItem, ...]:
        ranked = [
            RecommendedItem(
                item_id=model.item_ids[index],
                score=score,
                description=model.item_descriptions[index],
            )
            for score, index in zip(scores, indices, strict=True)
            if math.isfinite(score)
        ]
        return tuple(ranked[:k])

    def _popular(
        self, model: ServingModel | None, query: ShopperQuery, reason: FallbackReason
    ) -> Recommendation | InferenceError:
        chosen: dict[str, RecommendedItem] = {}
        for item in self._popular_candidates(model):
            if item.item_id not in query.exclude and item.item_id not in chosen:
                chosen[item.item_id] = item
                if len(chosen) == query.k:
                    break
        if not chosen and model is None:
            return NotReadyError(
                "no model has loaded and no purchase has been seen yet"
            )
        return Recommendation(
            items=tuple(chosen.values()),
            model_version=POPULARITY_VERSION,
            fallback_reason=reason,
        )

    def _popular_candidates(
        self, model: ServingModel | None
    ) -> Iterator[RecommendedItem]:
        """Live best sellers (within the model's catalogue), then the model's own."""
        for item_id, count in self._history.best_sellers():
            if model is None:
                yield RecommendedItem(
                    item_id=item_id,
                    score=float(count),
                    description=self._history.description(item_id),
                )
            elif (index := model.index_of.get(item_id)) is not None:
                yield RecommendedItem(
                    item_id=item_id,
                    score=float(count),
                    description=model.item_descriptions[index],
                )
        if model is None:
            return
        for index in model.popular_items:
            yield RecommendedItem(
                item_id=model.item_ids[index],
                score=0.0,
                description=model.item_descriptions[index],
            )


def model_sequence(model: ServingModel, recent_items: Collection[str]) -> list[int]:
    """The model's indices for the shopper's known purchases, last ``max_len``."""
    indices = [model.index_of[i] for i in recent_items if i in model.index_of]
    return indices[-model.max_len :]


def excluded_cells(
    model: ServingModel, queries: Sequence[ShopperQuery]
) -> tuple[list[int], list[int]]:
    """Rows and item indices of every excluded item the model knows."""
    rows: list[int] = []
    columns: list[int] = []
    for row, query in enumerate(queries):
        for item_id in query.exclude:
            index = model.index_of.get(item_id)
            if index is not None:
                rows.append(row)
                columns.append(index)
    return rows, columns
