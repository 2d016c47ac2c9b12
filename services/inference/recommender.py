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
from collections.abc import Collection, Iterator

import torch

from inference.errors import InvalidRequestError, NotReadyError
from inference.history import PurchaseHistory
from inference.model import PADDING_INDEX, ModelHolder, ServingModel

MIN_K = 1
MAX_K = 100
MAX_EXCLUDED_ITEMS = 1000
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


def check_request(user_id: str, k: int, exclude: Collection[str]) -> None:
    """Refuse a request that breaks the API's rules."""
    if not user_id.strip():
        raise InvalidRequestError("user_id must not be empty")
    if not MIN_K <= k <= MAX_K:
        raise InvalidRequestError(f"k must be between {MIN_K} and {MAX_K}, got {k}")
    if len(exclude) > MAX_EXCLUDED_ITEMS:
        raise InvalidRequestError(
            f"exclude may list at most {MAX_EXCLUDED_ITEMS} items, got {len(exclude)}"
        )


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
        check_request(user_id, k, exclude)
        excluded = frozenset(exclude)
        model = self._holder.current
        if model is None:
            return self._popular(None, k, excluded, FallbackReason.NO_MODEL)

        sequence = model_sequence(model, self._history.recent(user_id))
        if not sequence:
            return self._popular(model, k, excluded, FallbackReason.NO_HISTORY)
        items = self._ranked_by_model(model, sequence, k, excluded)
        return Recommendation(items=items, model_version=model.version)

    def _ranked_by_model(
        self,
        model: ServingModel,
        sequence: list[int],
        k: int,
        excluded: frozenset[str],
    ) -> tuple[RecommendedItem, ...]:
        item_seq = torch.zeros((1, model.max_len), dtype=torch.long)
        item_seq[0, model.max_len - len(sequence) :] = torch.tensor(sequence)
        scores = model.scorer.score(item_seq)[0].float()

        masked = torch.nan_to_num(scores, nan=-math.inf)
        blocked = [
            PADDING_INDEX,
            *(model.index_of[i] for i in excluded if i in model.index_of),
        ]
        masked[torch.tensor(blocked, device=masked.device)] = -math.inf
        top = torch.topk(masked, min(k, model.item_count))
        return tuple(
            RecommendedItem(
                item_id=model.item_ids[index],
                score=score,
                description=model.item_descriptions[index],
            )
            for score, index in zip(
                top.values.tolist(), top.indices.tolist(), strict=True
            )
            if math.isfinite(score)
        )

    def _popular(
        self,
        model: ServingModel | None,
        k: int,
        excluded: frozenset[str],
        reason: FallbackReason,
    ) -> Recommendation:
        chosen: dict[str, RecommendedItem] = {}
        for item in self._popular_candidates(model):
            if item.item_id not in excluded and item.item_id not in chosen:
                chosen[item.item_id] = item
                if len(chosen) == k:
                    break
        if not chosen and model is None:
            raise NotReadyError("no model has loaded and no purchase has been seen yet")
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
