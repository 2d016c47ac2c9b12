"""Ranks products for a shopper: the serving model, its predecessor, popularity.

A shopper's remembered purchases become a left-padded index sequence for the
model; padding and excluded items are masked before the top ``k`` are taken.
A row whose scores are not all finite, or a batch the model fails to score,
is answered by the previous model version instead, and failing that by
popularity. Popularity also answers when no model has loaded yet or the
shopper has no known purchases: live purchase counts first, then the model's
own popular items.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import logging
import math
from collections.abc import Collection, Iterator, Mapping, Sequence

import torch

from inference.errors import InferenceError, NotReadyError
from inference.history import PurchaseHistory
from inference.model import PADDING_INDEX, ModelHolder, ServingModel
from inference.validation import MAX_K, check_recommend

logger = logging.getLogger(__name__)

# Every row's top items are taken to this depth, the most a caller may ask for.
RANKING_DEPTH = MAX_K
POPULARITY_VERSION = "popularity"


class FallbackReason(enum.StrEnum):
    """Why the current model did not answer; a bounded metric label."""

    NO_MODEL = "no_model"
    NO_HISTORY = "no_history"
    NON_FINITE_SCORES = "non_finite_scores"
    SCORING_ERROR = "scoring_error"


class AnswerSource(enum.StrEnum):
    """What produced an answer; a bounded metric label."""

    MODEL = "model"
    PREVIOUS_MODEL = "previous_model"
    POPULARITY = "popularity"


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
    source: AnswerSource = AnswerSource.MODEL
    fallback_reason: FallbackReason | None = None

    @property
    def fallback(self) -> bool:
        """True when anything but the current model answered."""
        return self.source is not AnswerSource.MODEL


@dataclasses.dataclass(frozen=True, kw_only=True)
class ShopperQuery:
    """One checked Recommend request, named by its request id."""

    request_id: str
    user_id: str
    k: int
    exclude: frozenset[str] = frozenset()


@dataclasses.dataclass(frozen=True)
class ServingFailure:
    """The current model failed its latest rows; what answered them instead."""

    model_version: str
    reason: FallbackReason
    answered_by: AnswerSource


@dataclasses.dataclass(frozen=True, kw_only=True)
class ServingStatus:
    """What answers Recommend now, for health checks and operators."""

    answering: AnswerSource | None  # None: nothing can answer at all
    model_version: str | None = None
    previous_version: str | None = None
    failure: ServingFailure | None = None

    @property
    def can_answer(self) -> bool:
        """Whether any model, or popularity, can answer."""
        return self.answering is not None

    def to_json(self) -> str:
        """The status as JSON for ``/status``."""
        failure = self.failure
        return json.dumps(
            {
                "serving": self.can_answer,
                "answering": self.answering.value if self.answering else None,
                "fallback": self.answering not in (AnswerSource.MODEL, None),
                "model_version": self.model_version,
                "previous_version": self.previous_version,
                "fallback_reason": failure.reason.value if failure else None,
            }
        )


# Answers to a batch of queries, or why one could not be answered, by request id.
RankedBatch = dict[str, Recommendation | InferenceError]


@dataclasses.dataclass
class _Scored:
    """What one model made of some queries: answers, failures, unknown shoppers."""

    answers: dict[str, Recommendation] = dataclasses.field(default_factory=dict)
    failed: dict[str, FallbackReason] = dataclasses.field(default_factory=dict)
    without_history: list[ShopperQuery] = dataclasses.field(default_factory=list)


class Recommender:
    """Answers Recommend from the model in service and the purchase history.

    Per request, the current model answers; where its scores are not all
    finite, or it fails outright, the previous version answers, and where
    that cannot, popularity does.
    """

    def __init__(self, holder: ModelHolder, history: PurchaseHistory) -> None:
        self._holder = holder
        self._history = history
        self._failure: ServingFailure | None = None

    def can_answer(self) -> bool:
        """Whether a model has loaded or any purchase has been seen."""
        return self._holder.current is not None or bool(self._history.best_sellers())

    def status(self) -> ServingStatus:
        """What answers now: the model, a fallback, or nothing at all."""
        current, previous = self._holder.serving()
        failure = self.failure()
        if current is not None:
            answering = failure.answered_by if failure else AnswerSource.MODEL
        elif self._history.best_sellers():
            answering = AnswerSource.POPULARITY
        else:
            answering = None
        return ServingStatus(
            answering=answering,
            model_version=current.version if current else None,
            previous_version=previous.version if previous else None,
            failure=failure,
        )

    def failure(self) -> ServingFailure | None:
        """How the current model failed its latest rows; ``None`` while it scores.

        A failure of a version no longer current is forgotten.
        """
        failure, current = self._failure, self._holder.current
        if failure is None or current is None:
            return None
        return failure if failure.model_version == current.version else None

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
        current, previous = self._holder.serving()
        if current is None:
            return {
                query.request_id: self._popular(None, query, FallbackReason.NO_MODEL)
                for query in queries
            }

        answers: RankedBatch = {}
        scored = self._score(current, queries)
        answers.update(scored.answers)
        for query in scored.without_history:
            answers[query.request_id] = self._popular(
                current, query, FallbackReason.NO_HISTORY
            )
        if scored.failed:
            answers.update(self._fall_back(current, previous, queries, scored.failed))
        elif scored.answers:
            self._failure = None
        return answers

    def _fall_back(
        self,
        current: ServingModel,
        previous: ServingModel | None,
        queries: Sequence[ShopperQuery],
        failed: Mapping[str, FallbackReason],
    ) -> RankedBatch:
        """Answers from the previous model, else popularity, for failed queries."""
        retry = [query for query in queries if query.request_id in failed]
        by_previous = self._score(previous, retry).answers if previous else {}
        answers: RankedBatch = {}
        for query in retry:
            reason = failed[query.request_id]
            answer = by_previous.get(query.request_id)
            if answer is not None:
                answers[query.request_id] = dataclasses.replace(
                    answer, source=AnswerSource.PREVIOUS_MODEL, fallback_reason=reason
                )
            else:
                answers[query.request_id] = self._popular(current, query, reason)

        worst = (
            FallbackReason.SCORING_ERROR
            if FallbackReason.SCORING_ERROR in failed.values()
            else FallbackReason.NON_FINITE_SCORES
        )
        answered_by = (
            AnswerSource.PREVIOUS_MODEL
            if len(by_previous) == len(retry)
            else AnswerSource.POPULARITY
        )
        self._note_failure(
            ServingFailure(current.version, worst, answered_by), len(retry)
        )
        return answers

    def _note_failure(self, failure: ServingFailure, rows: int) -> None:
        if failure != self._failure:
            logger.warning(
                "current model failed; falling back",
                extra={
                    "model_version": failure.model_version,
                    "reason": failure.reason.value,
                    "answered_by": failure.answered_by.value,
                    "rows": rows,
                },
            )
        self._failure = failure

    def _score(self, model: ServingModel, queries: Sequence[ShopperQuery]) -> _Scored:
        """Score every query the model knows the shopper for; note what failed."""
        outcome = _Scored()
        sequences: dict[str, list[int]] = {}
        for query in queries:
            sequence = model_sequence(model, self._history.recent(query.user_id))
            if sequence:
                sequences[query.request_id] = sequence
            else:
                outcome.without_history.append(query)
        known = [query for query in queries if query.request_id in sequences]
        if not known:
            return outcome

        try:
            scores = self._model_scores(model, known, sequences)
        except Exception:  # a failing model must not fail the request
            logger.exception(
                "model failed to score a batch",
                extra={"model_version": model.version, "rows": len(known)},
            )
            outcome.failed = {q.request_id: FallbackReason.SCORING_ERROR for q in known}
            return outcome

        finite = torch.isfinite(scores[:, PADDING_INDEX + 1 :]).all(dim=1).tolist()
        good = [query for query, ok in zip(known, finite, strict=True) if ok]
        outcome.failed = {
            query.request_id: FallbackReason.NON_FINITE_SCORES
            for query, ok in zip(known, finite, strict=True)
            if not ok
        }
        if good:
            rows = [row for row, ok in enumerate(finite) if ok]
            if len(rows) < len(known):
                scores = scores[torch.tensor(rows, device=scores.device)]
            outcome.answers = self._ranked(model, good, scores)
        return outcome

    @staticmethod
    def _model_scores(
        model: ServingModel,
        queries: Sequence[ShopperQuery],
        sequences: Mapping[str, list[int]],
    ) -> torch.Tensor:
        """``[len(queries), V]`` float scores, one row per query, in order."""
        item_seq = torch.zeros((len(queries), model.max_len), dtype=torch.long)
        for row, query in enumerate(queries):
            sequence = sequences[query.request_id]
            item_seq[row, model.max_len - len(sequence) :] = torch.tensor(sequence)
        scores = model.scorer.score(item_seq)
        expected = (len(queries), model.item_count)
        if tuple(scores.shape) != expected:
            raise ValueError(f"scores are {tuple(scores.shape)}, not {expected}")
        return scores.float()

    def _ranked(
        self,
        model: ServingModel,
        queries: Sequence[ShopperQuery],
        scores: torch.Tensor,
    ) -> dict[str, Recommendation]:
        """Each query's top ``k`` from its row, padding and exclusions masked."""
        masked = scores.clone()
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
            source=AnswerSource.POPULARITY,
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
