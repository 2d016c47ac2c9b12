import asyncio
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest
from inference_fakes import count, serving_model
from prometheus_client import CollectorRegistry
from recops.v1 import storefront_pb2, storefront_pb2_grpc

from inference.batching import MicroBatcher
from inference.errors import (
    ArtifactRejectedError,
    InvalidRequestError,
    NotReadyError,
    RejectionReason,
    UnsupportedError,
)
from inference.history import PurchaseHistory
from inference.metrics import InferenceMetrics
from inference.model import ModelHolder
from inference.recommender import Recommendation, Recommender, ShopperQuery
from inference.service import StorefrontService, status_code_of

Call = Callable[[storefront_pb2_grpc.StorefrontStub], Awaitable[object]]


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (InvalidRequestError("k"), grpc.StatusCode.INVALID_ARGUMENT),
        (NotReadyError("empty"), grpc.StatusCode.UNAVAILABLE),
        (UnsupportedError("Search"), grpc.StatusCode.UNIMPLEMENTED),
        (
            ArtifactRejectedError(RejectionReason.MISSING, "gone"),
            grpc.StatusCode.INTERNAL,
        ),
        (RuntimeError("CUDA error"), grpc.StatusCode.INTERNAL),
    ],
)
def test_each_error_maps_to_the_status_a_caller_can_act_on(
    error: Exception, code: grpc.StatusCode
) -> None:
    assert status_code_of(error) is code


def call_in_process(
    metrics: InferenceMetrics, recommender: Recommender, call: Call
) -> object:
    """Serve the storefront on a free local port and make one call to it."""

    async def serve_and_call() -> object:
        server = grpc.aio.server()
        with ThreadPoolExecutor(1) as executor:
            batcher = MicroBatcher[ShopperQuery, Recommendation](
                recommender.recommend_batch,
                executor=executor,
                metrics=metrics,
                max_batch_size=8,
                max_delay_seconds=0.0,
            )
            storefront_pb2_grpc.add_StorefrontServicer_to_server(
                StorefrontService(batcher, metrics), server
            )
            port = server.add_insecure_port("127.0.0.1:0")
            await batcher.start()
            await server.start()
            try:
                async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                    return await call(storefront_pb2_grpc.StorefrontStub(channel))
            finally:
                await server.stop(None)
                await batcher.stop()

    return asyncio.run(serve_and_call())


def shop_recommender() -> Recommender:
    holder = ModelHolder()
    holder.swap(serving_model([0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]))
    history = PurchaseHistory(max_items_per_user=5)
    history.record("17850", "85123A")
    return Recommender(holder, history)


def test_a_recommend_answer_carries_items_model_version_and_request_id(
    metrics: InferenceMetrics, registry: CollectorRegistry
) -> None:
    async def recommend(stub: storefront_pb2_grpc.StorefrontStub) -> object:
        request = storefront_pb2.RecommendRequest(user_id="17850", k=3)
        return await stub.Recommend(request, timeout=5)

    response = call_in_process(metrics, shop_recommender(), recommend)

    assert isinstance(response, storefront_pb2.RecommendResponse)
    assert [item.item_id for item in response.items] == ["21730", "22752", "84029E"]
    assert response.model_version == "20261203T190102Z-aaaaaaaa"
    assert not response.fallback
    assert len(response.request_id) == 32
    assert (
        count(
            registry, "recops_inference_requests_total", method="Recommend", code="OK"
        )
        == 1
    )
    assert (
        count(
            registry,
            "recops_inference_request_duration_seconds_count",
            method="Recommend",
        )
        == 1
    )


def test_an_invalid_request_is_answered_invalid_argument_with_the_reason(
    metrics: InferenceMetrics, registry: CollectorRegistry
) -> None:
    async def recommend(stub: storefront_pb2_grpc.StorefrontStub) -> object:
        request = storefront_pb2.RecommendRequest(user_id="17850", k=0)
        try:
            await stub.Recommend(request, timeout=5)
        except grpc.aio.AioRpcError as exc:
            return exc
        return None

    error = call_in_process(metrics, shop_recommender(), recommend)

    assert isinstance(error, grpc.aio.AioRpcError)
    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert error.details() == "k must be between 1 and 100, got 0"
    assert (
        count(
            registry,
            "recops_inference_requests_total",
            method="Recommend",
            code="INVALID_ARGUMENT",
        )
        == 1
    )


def test_a_popularity_answer_is_flagged_as_a_fallback_and_counted(
    metrics: InferenceMetrics, registry: CollectorRegistry
) -> None:
    history = PurchaseHistory(max_items_per_user=5)
    history.record("12583", "22752")
    recommender = Recommender(ModelHolder(), history)

    async def recommend(stub: storefront_pb2_grpc.StorefrontStub) -> object:
        request = storefront_pb2.RecommendRequest(user_id="17850", k=3)
        return await stub.Recommend(request, timeout=5)

    response = call_in_process(metrics, recommender, recommend)

    assert isinstance(response, storefront_pb2.RecommendResponse)
    assert response.fallback
    assert response.model_version == "popularity"
    assert [item.item_id for item in response.items] == ["22752"]
    assert count(registry, "recops_inference_fallbacks_total", reason="no_model") == 1


def test_search_is_answered_unimplemented(metrics: InferenceMetrics) -> None:
    async def search(stub: storefront_pb2_grpc.StorefrontStub) -> object:
        try:
            await stub.Search(storefront_pb2.SearchRequest(query="lantern", k=3))
        except grpc.aio.AioRpcError as exc:
            return exc.code()
        return None

    assert call_in_process(metrics, shop_recommender(), search) is (
        grpc.StatusCode.UNIMPLEMENTED
    )
