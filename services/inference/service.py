"""The ``recops.v1.Storefront`` gRPC service, and the one map to status codes."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import TypeVar

import grpc
from recops.v1 import storefront_pb2, storefront_pb2_grpc

from inference.batching import MicroBatcher
from inference.errors import (
    ArtifactRejectedError,
    DeadlineExceededError,
    InferenceError,
    InvalidRequestError,
    NotReadyError,
    OverloadedError,
    SettingsError,
    UnsupportedError,
)
from inference.metrics import InferenceMetrics
from inference.recommender import Recommendation, ShopperQuery
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
    """Answers Recommend through a batcher; Search is not served yet."""

    def __init__(self, batcher: RecommendBatcher, metrics: InferenceMetrics) -> None:
        self._batcher = batcher
        self._metrics = metrics

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
            return to_response(recommendation, request_id)

        return await self._answer("Recommend", context, request_id, answer)

    async def Search(
        self,
        request: storefront_pb2.SearchRequest,
        context: grpc.aio.ServicerContext,
    ) -> storefront_pb2.SearchResponse:
        async def answer() -> storefront_pb2.SearchResponse:
            check_search(request)
            raise UnsupportedError("Search is not served by this version")

        return await self._answer("Search", context, uuid.uuid4().hex, answer)

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
