"""The ``recops.v1.Storefront`` gRPC service, and the one map to status codes.

Every Recommend answer is also published to the served-recommendations
topic, without waiting for it: a record that cannot be published is counted
and never fails the call.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TypeVar

import grpc
from recops.v1 import storefront_pb2, storefront_pb2_grpc

from eventbus.contracts import ServedRecommendation
from eventbus.topics import Topic
from inference.batching import MicroBatcher
from inference.errors import (
    ArtifactRejectedError,
    DeadlineExceededError,
    InferenceError,
    InvalidRequestError,
    NoSearchIndexError,
    NotReadyError,
    OverloadedError,
    SettingsError,
    UnsupportedError,
)
from inference.metrics import InferenceMetrics
from inference.publish import FAILED, RecordPublisher
from inference.recommender import Recommendation, ShopperQuery
from inference.search import NO_SEARCH_INDEX, Searcher, SearchResult
from inference.validation import check_recommend_request, check_search

logger = logging.getLogger(__name__)

SERVICE_NAME = storefront_pb2.DESCRIPTOR.services_by_name["Storefront"].full_name

_STATUS_CODES: tuple[tuple[type[InferenceError], grpc.StatusCode], ...] = (
    (InvalidRequestError, grpc.StatusCode.INVALID_ARGUMENT),
    (NotReadyError, grpc.StatusCode.UNAVAILABLE),
    (OverloadedError, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (DeadlineExceededError, grpc.StatusCode.DEADLINE_EXCEEDED),
    (UnsupportedError, grpc.StatusCode.UNIMPLEMENTED),
    (ArtifactRejectedError, grpc.StatusCode.INTERNAL),
    (SettingsError, grpc.StatusCode.INTERNAL),
)

Response = TypeVar("Response")
RecommendBatcher = MicroBatcher[ShopperQuery, Recommendation]


def status_code_of(error: BaseException) -> grpc.StatusCode:
    """The gRPC status a caller receives for ``error``."""
    for error_type, code in _STATUS_CODES:
        if isinstance(error, error_type):
            return code
    if isinstance(error, InferenceError) and error.retriable:
        return grpc.StatusCode.UNAVAILABLE
    return grpc.StatusCode.INTERNAL


class StorefrontService(storefront_pb2_grpc.StorefrontServicer):
    """Answers Recommend through a batcher and Search from a product index.

    ``served`` receives each Recommend answer as a ServedRecommendation.
    Without a ``searcher``, Search answers UNAVAILABLE.
    """

    def __init__(
        self,
        batcher: RecommendBatcher,
        metrics: InferenceMetrics,
        *,
        served: RecordPublisher,
        searcher: Searcher | None = None,
    ) -> None:
        self._batcher = batcher
        self._metrics = metrics
        self._served = served
        self._searcher = searcher

    async def Recommend(
        self,
        request: storefront_pb2.RecommendRequest,
        context: grpc.aio.ServicerContext,
    ) -> storefront_pb2.RecommendResponse:
        request_id = uuid.uuid4().hex

        async def answer() -> storefront_pb2.RecommendResponse:
            check_recommend_request(request)
            query = ShopperQuery(
                request_id=request_id,
                user_id=request.user_id,
                k=request.k,
                exclude=frozenset(request.exclude),
            )
            recommendation = await self._batcher.submit(
                query, time_left_seconds=context.time_remaining()
            )
            self._count_fallback(recommendation)
            self._publish_served(query, recommendation)
            return to_response(recommendation, request_id)

        return await self._answer("Recommend", context, request_id, answer)

    async def Search(
        self,
        request: storefront_pb2.SearchRequest,
        context: grpc.aio.ServicerContext,
    ) -> storefront_pb2.SearchResponse:
        request_id = uuid.uuid4().hex

        async def answer() -> storefront_pb2.SearchResponse:
            check_search(request)
            if self._searcher is None:
                raise NoSearchIndexError(NO_SEARCH_INDEX)
            result = await self._searcher.search(request.query, request.k)
            return to_search_response(result, request_id)

        return await self._answer("Search", context, request_id, answer)

    async def _answer(
        self,
        method: str,
        context: grpc.aio.ServicerContext,
        request_id: str,
        answer: Callable[[], Awaitable[Response]],
    ) -> Response:
        """Run ``answer``; map any error to a status; count and time the call."""
        started = time.perf_counter()
        code = grpc.StatusCode.OK
        try:
            return await answer()
        except asyncio.CancelledError:
            code = grpc.StatusCode.CANCELLED
            raise
        except Exception as exc:
            code = status_code_of(exc)
            self._log_failure(method, request_id, code, exc)
            await context.abort(code, str(exc))
            raise  # abort() raises; this line only keeps the type checker honest
        finally:
            self._metrics.requests.labels(method, code.name).inc()
            self._metrics.request_duration_seconds.labels(method).observe(
                time.perf_counter() - started
            )

    def _count_fallback(self, recommendation: Recommendation) -> None:
        if recommendation.fallback_reason is not None:
            self._metrics.fallbacks.labels(
                recommendation.fallback_reason.value, recommendation.source.value
            ).inc()

    def _publish_served(
        self, query: ShopperQuery, recommendation: Recommendation
    ) -> None:
        """Queue the answer for the served topic; a failure only counts."""
        try:
            record = served_record(query, recommendation)
            self._served.publish(query.user_id, record)
        except Exception:  # the shopper gets the answer whatever the topic does
            self._metrics.published_records.labels(
                Topic.SERVED_RECOMMENDATIONS.value, FAILED
            ).inc()
            logger.exception(
                "served recommendation not published",
                extra={"request_id": query.request_id},
            )

    @staticmethod
    def _log_failure(
        method: str, request_id: str, code: grpc.StatusCode, error: Exception
    ) -> None:
        context = {"method": method, "request_id": request_id, "code": code.name}
        if code is grpc.StatusCode.INTERNAL:
            logger.error("request failed: %r", error, exc_info=error, extra=context)
        else:
            logger.debug("request refused: %s", error, extra=context)


def to_response(
    recommendation: Recommendation, request_id: str
) -> storefront_pb2.RecommendResponse:
    """The wire form of a recommendation."""
    return storefront_pb2.RecommendResponse(
        items=[
            storefront_pb2.ScoredItem(
                item_id=item.item_id, score=item.score, description=item.description
            )
            for item in recommendation.items
        ],
        model_version=recommendation.model_version,
        request_id=request_id,
        fallback=recommendation.fallback,
    )


def to_search_response(
    result: SearchResult, request_id: str
) -> storefront_pb2.SearchResponse:
    """The wire form of a Search answer."""
    return storefront_pb2.SearchResponse(
        items=[
            storefront_pb2.ScoredItem(item_id=product_id, score=score)
            for product_id, score in result.items
        ],
        model_version=result.version,
        request_id=request_id,
    )


def served_record(
    query: ShopperQuery,
    recommendation: Recommendation,
    *,
    at: datetime | None = None,
) -> ServedRecommendation:
    """The record of one answer on the served-recommendations topic."""
    reason = recommendation.fallback_reason
    record = ServedRecommendation(
        request_id=query.request_id,
        user_id=query.user_id,
        item_ids=[item.item_id for item in recommendation.items],
        scores=[item.score for item in recommendation.items],
        model_version=recommendation.model_version,
        answered_by=recommendation.source.value,
        fallback=recommendation.fallback,
        fallback_reason=reason.value if reason is not None else "",
    )
    record.served_at.FromDatetime(at or datetime.now(UTC))
    return record
