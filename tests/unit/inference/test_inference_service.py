import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc
import pytest
from inference_fakes import GatedScorer, RecordedPublisher, count, serving_model
from prometheus_client import CollectorRegistry
from recops.v1 import storefront_pb2, storefront_pb2_grpc

from eventbus.contracts import ServedRecommendation
from inference.errors import (
    ArtifactRejectedError,
    DeadlineExceededError,
    InvalidRequestError,
    NotReadyError,
    OverloadedError,
    RejectionReason,
    UnsupportedError,
)
from inference.history import PurchaseHistory
from inference.metrics import InferenceMetrics
from inference.model import ModelHolder
from inference.publish import RecordPublisher
from inference.recommender import Recommender
from inference.service import RecommendBatcher, StorefrontService, status_code_of

Call = Callable[[storefront_pb2_grpc.StorefrontStub], Awaitable[object]]


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (InvalidRequestError("k"), grpc.StatusCode.INVALID_ARGUMENT),
        (NotReadyError("empty"), grpc.StatusCode.UNAVAILABLE),
        (OverloadedError("full"), grpc.StatusCode.RESOURCE_EXHAUSTED),
        (DeadlineExceededError("late"), grpc.StatusCode.DEADLINE_EXCEEDED),
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


@contextlib.asynccontextmanager
async def serving(
    metrics: InferenceMetrics,
    recommender: Recommender,
    served: RecordPublisher | None = None,
    **batcher_options: Any,
) -> AsyncIterator[tuple[storefront_pb2_grpc.StorefrontStub, RecommendBatcher]]:
    """The storefront on a free local port, a stub calling it, and its batcher."""
    served = served if served is not None else RecordedPublisher()
    options = {"max_batch_size": 8, "max_delay_seconds": 0.0, **batcher_options}
    server = grpc.aio.server()
    with ThreadPoolExecutor(1) as executor:
        batcher = RecommendBatcher(
            recommender.recommend_batch, executor=executor, metrics=metrics, **options
        )
        storefront_pb2_grpc.add_StorefrontServicer_to_server(
            StorefrontService(batcher, metrics, served=served), server
        )
        port = server.add_insecure_port("127.0.0.1:0")
        await batcher.start()
        await server.start()
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                yield storefront_pb2_grpc.StorefrontStub(channel), batcher
        finally:
            await server.stop(None)
            await batcher.stop()


def call_in_process(
    metrics: InferenceMetrics,
    recommender: Recommender,
    call: Call,
    served: RecordPublisher | None = None,
) -> object:
    """Serve the storefront and make one call to it."""

    async def serve_and_call() -> object:
        async with serving(metrics, recommender, served) as (stub, _):
            return await call(stub)

    return asyncio.run(serve_and_call())


async def until(condition: Callable[[], bool]) -> None:
    """Yield to the server until ``condition`` holds."""
    while not condition():
        await asyncio.sleep(0.01)


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
    assert (
        count(
            registry,
            "recops_inference_fallbacks_total",
            reason="no_model",
            answered_by="popularity",
        )
        == 1
    )


def test_a_request_with_a_field_the_contract_lacks_is_invalid_argument(
    metrics: InferenceMetrics,
) -> None:
    async def recommend_from_a_newer_contract(
        stub: storefront_pb2_grpc.StorefrontStub,
    ) -> object:
        wire = storefront_pb2.RecommendRequest(user_id="17850", k=3)
        newer = storefront_pb2.RecommendRequest()
        # Field 5, varint 1: parsed and sent on untouched, as protobuf does.
        newer.ParseFromString(wire.SerializeToString() + bytes([0x28, 0x01]))
        try:
            await stub.Recommend(newer, timeout=5)
        except grpc.aio.AioRpcError as exc:
            return exc
        return None

    error = call_in_process(
        metrics, shop_recommender(), recommend_from_a_newer_contract
    )

    assert isinstance(error, grpc.aio.AioRpcError)
    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert error.details() == (
        "RecommendRequest has fields this server does not know: numbers 5"
    )


def test_a_search_request_is_checked_before_it_is_answered(
    metrics: InferenceMetrics,
) -> None:
    async def search_too_long(stub: storefront_pb2_grpc.StorefrontStub) -> object:
        try:
            request = storefront_pb2.SearchRequest(query="lantern " * 100, k=3)
            await stub.Search(request, timeout=5)
        except grpc.aio.AioRpcError as exc:
            return exc
        return None

    error = call_in_process(metrics, shop_recommender(), search_too_long)

    assert isinstance(error, grpc.aio.AioRpcError)
    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert error.details() == "query may be at most 512 characters, got 800"


def test_search_without_an_index_is_answered_unavailable(
    metrics: InferenceMetrics,
) -> None:
    async def search(stub: storefront_pb2_grpc.StorefrontStub) -> object:
        try:
            await stub.Search(storefront_pb2.SearchRequest(query="lantern", k=3))
        except grpc.aio.AioRpcError as exc:
            return exc.code()
        return None

    assert call_in_process(metrics, shop_recommender(), search) is (
        grpc.StatusCode.UNAVAILABLE
    )


def test_a_full_queue_is_answered_resource_exhausted_and_cancelling_frees_a_slot(
    metrics: InferenceMetrics, registry: CollectorRegistry
) -> None:
    scorer = GatedScorer([0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0])
    holder = ModelHolder()
    holder.swap(serving_model([], scorer=scorer))
    history = PurchaseHistory(max_items_per_user=5)
    history.record("17850", "85123A")
    request = storefront_pb2.RecommendRequest(user_id="17850", k=2)

    async def overload() -> tuple[list[grpc.StatusCode], str]:
        async with serving(
            metrics, Recommender(holder, history), max_batch_size=1, max_queue_size=1
        ) as (stub, batcher):
            busy = stub.Recommend(request, timeout=30)
            await asyncio.to_thread(scorer.entered.wait, 30)
            gives_up = stub.Recommend(request, timeout=30)
            await until(lambda: batcher.queue_depth == 1)
            with pytest.raises(grpc.aio.AioRpcError) as shed:
                await stub.Recommend(request, timeout=30)
            gives_up.cancel()
            await until(lambda: batcher.queue_depth == 0)
            after = stub.Recommend(request, timeout=30)
            await until(lambda: batcher.queue_depth == 1)
            scorer.gate.set()
            await busy
            await after
            codes = [await busy.code(), await gives_up.code(), shed.value.code()]
            return [*codes, await after.code()], shed.value.details() or ""

    codes, details = asyncio.run(overload())

    assert codes == [
        grpc.StatusCode.OK,
        grpc.StatusCode.CANCELLED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.OK,
    ]
    assert details == "the queue is full (1 requests waiting); retry later"
    assert count(registry, "recops_inference_shed_requests_total") == 1
    assert (
        count(
            registry,
            "recops_inference_requests_total",
            method="Recommend",
            code="RESOURCE_EXHAUSTED",
        )
        == 1
    )
    assert (
        count(registry, "recops_inference_dropped_requests_total", reason="cancelled")
        == 1
    )


def recommend_for(user_id: str, k: int = 3) -> Call:
    async def recommend(stub: storefront_pb2_grpc.StorefrontStub) -> object:
        request = storefront_pb2.RecommendRequest(user_id=user_id, k=k)
        return await stub.Recommend(request, timeout=5)

    return recommend


def served_records(served: RecordedPublisher) -> list[ServedRecommendation]:
    records = []
    for key, message in served.records:
        assert isinstance(message, ServedRecommendation)
        assert key == message.user_id
        records.append(message)
    return records


def test_each_recommend_answer_is_published_as_it_was_served(
    metrics: InferenceMetrics,
) -> None:
    served = RecordedPublisher()

    response = call_in_process(
        metrics, shop_recommender(), recommend_for("17850"), served
    )

    assert isinstance(response, storefront_pb2.RecommendResponse)
    [record] = served_records(served)
    assert record.request_id == response.request_id
    assert record.user_id == "17850"
    assert list(record.item_ids) == [item.item_id for item in response.items]
    assert list(record.scores) == pytest.approx([i.score for i in response.items])
    assert record.model_version == response.model_version
    assert record.answered_by == "model"
    assert not record.fallback
    assert record.fallback_reason == ""
    assert record.served_at.seconds > 0


def test_a_fallback_answer_is_published_with_what_answered_and_why(
    metrics: InferenceMetrics,
) -> None:
    history = PurchaseHistory(max_items_per_user=5)
    history.record("12583", "22752")
    served = RecordedPublisher()

    call_in_process(
        metrics, Recommender(ModelHolder(), history), recommend_for("17850"), served
    )

    [record] = served_records(served)
    assert record.fallback
    assert record.answered_by == "popularity"
    assert record.fallback_reason == "no_model"
    assert record.model_version == "popularity"


class BrokenPublisher:
    """A topic writer that fails every record, as a broken producer might."""

    def publish(self, key: str, message: object) -> None:
        raise RuntimeError("producer is gone")

    def close(self, timeout_seconds: float) -> None:
        pass


def test_a_record_that_cannot_be_published_is_counted_and_the_call_answered(
    metrics: InferenceMetrics, registry: CollectorRegistry
) -> None:
    response = call_in_process(
        metrics,
        shop_recommender(),
        recommend_for("17850"),
        BrokenPublisher(),
    )

    assert isinstance(response, storefront_pb2.RecommendResponse)
    assert len(response.items) == 3
    published = count(
        registry,
        "recops_inference_published_records_total",
        topic="served-recommendations",
        outcome="failed",
    )
    assert published == 1


def test_a_refused_request_publishes_nothing(metrics: InferenceMetrics) -> None:
    served = RecordedPublisher()

    async def recommend(stub: storefront_pb2_grpc.StorefrontStub) -> object:
        with pytest.raises(grpc.aio.AioRpcError):
            await recommend_for("17850", k=0)(stub)
        return None

    call_in_process(metrics, shop_recommender(), recommend, served)

    assert served.records == []
