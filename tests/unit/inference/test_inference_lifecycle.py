import asyncio
import json
import math
import queue
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

import grpc
import pytest
import torch
from grpc_health.v1 import health_pb2, health_pb2_grpc
from inference_fakes import (
    FakeRecord,
    GatedScorer,
    RecordedPublisher,
    ScoreFunction,
    announced,
    count,
    ingested,
    serving_model,
)
from prometheus_client import CollectorRegistry
from recops.v1 import storefront_pb2, storefront_pb2_grpc

from eventbus import KafkaSettings
from eventbus.contracts import ModelReady
from eventbus.topics import Topic
from inference.errors import SettingsError
from inference.feeds import Record
from inference.model import Scorer, ServingModel
from inference.server import InferenceServer, scoring_device
from inference.settings import InferenceSettings

T = TypeVar("T")
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
ASCENDING = [float(n) for n in range(8)]
GOOD = "20261203T190102Z-00000001"
BROKEN = "20261204T190102Z-00000002"


class QueueSource:
    """A topic in memory: records a test puts in are consumed once, in order."""

    def __init__(self) -> None:
        self.records: queue.Queue[FakeRecord] = queue.Queue()

    def put(self, *records: FakeRecord) -> None:
        for record in records:
            self.records.put(record)

    def consume(self, max_records: int, timeout_seconds: float) -> list[Record]:
        try:
            batch: list[Record] = [self.records.get(timeout=timeout_seconds)]
        except queue.Empty:
            return []
        while len(batch) < max_records and not self.records.empty():
            batch.append(self.records.get_nowait())
        return batch

    def close(self) -> None:
        pass


class ScorersByVersion:
    """Loads each announced version with the scorer a test chose for it."""

    def __init__(self, scorers: dict[str, Scorer]) -> None:
        self.scorers = scorers

    def __call__(self, ready: ModelReady) -> ServingModel:
        return serving_model(
            [], version=ready.version, scorer=self.scorers[ready.version]
        )


class Harness:
    """An inference server on free ports fed from in-memory topics."""

    def __init__(self, scorers: dict[str, Scorer], grace_seconds: float) -> None:
        self.registry = CollectorRegistry()
        self.models = QueueSource()
        self.events = QueueSource()
        self.alerts = RecordedPublisher()
        self.served = RecordedPublisher()
        settings = InferenceSettings(
            grpc_port=0,
            metrics_port=0,
            device="cpu",
            poll_timeout_seconds=0.05,
            shutdown_grace_seconds=grace_seconds,
            max_batch_delay_seconds=0.0,
        )
        self.server = InferenceServer(
            settings,
            KafkaSettings(),
            registry=self.registry,
            record_sources={
                Topic.MODEL_READY: lambda: self.models,
                Topic.INGESTED_EVENTS: lambda: self.events,
            },
            record_publishers={
                Topic.ALERTS: lambda: self.alerts,
                Topic.SERVED_RECOMMENDATIONS: lambda: self.served,
            },
            model_loader=ScorersByVersion(scorers),
        )
        self.channel: grpc.aio.Channel | None = None

    @property
    def stub(self) -> storefront_pb2_grpc.StorefrontStub:
        return storefront_pb2_grpc.StorefrontStub(self.channel)

    @property
    def health(self) -> health_pb2_grpc.HealthStub:
        return health_pb2_grpc.HealthStub(self.channel)

    def announce(self, version: str) -> None:
        ready = ModelReady(
            model_name="sequential-recommender", version=version, sha256=version
        )
        self.models.put(announced(ready))

    async def health_status(self) -> int:
        request = health_pb2.HealthCheckRequest(service="recops.v1.Storefront")
        return (await self.health.Check(request, timeout=5)).status

    def http(self, path: str) -> tuple[int, str]:
        url = f"http://127.0.0.1:{self.server.metrics_port}{path}"
        try:
            with urllib.request.urlopen(url, timeout=5) as answer:
                return answer.status, answer.read().decode()
        except urllib.error.HTTPError as refused:
            return refused.code, refused.read().decode()

    def gauge(self, source: str) -> float:
        return count(self.registry, "recops_inference_answering", source=source)


async def eventually(check: Callable[[], object], guard_seconds: float = 20) -> None:
    """Poll ``check`` until it is truthy; the guard only stops a broken server."""
    async with asyncio.timeout(guard_seconds):
        while not check():
            await asyncio.sleep(0.02)


async def started(harness: Harness) -> AsyncIterator[Harness]:
    await harness.server.start()
    target = f"127.0.0.1:{harness.server.grpc_port}"
    async with grpc.aio.insecure_channel(target) as channel:
        harness.channel = channel
        try:
            yield harness
        finally:
            await harness.server.stop()


def run_with(
    scorers: dict[str, Scorer],
    scenario: Callable[[Harness], Awaitable[None]],
    *,
    grace_seconds: float = 5.0,
) -> None:
    async def main() -> None:
        harness = Harness(scorers, grace_seconds)
        async for running in started(harness):
            await scenario(running)

    asyncio.run(main())


def nan_scores(item_seq: torch.Tensor) -> torch.Tensor:
    return torch.full((item_seq.shape[0], 8), math.nan)


def recommend(user_id: str = "17850") -> storefront_pb2.RecommendRequest:
    return storefront_pb2.RecommendRequest(user_id=user_id, k=2)


def test_health_is_not_serving_until_something_can_answer() -> None:
    async def scenario(harness: Harness) -> None:
        assert await harness.health_status() == NOT_SERVING
        assert harness.http("/readyz") == (
            503,
            "no model has loaded and no purchase has been seen yet\n",
        )
        status, text = harness.http("/status")
        assert (status, json.loads(text)["serving"]) == (200, False)

        harness.events.put(ingested("12583", "22752"))
        await eventually(lambda: harness.gauge("popularity") == 1)

        assert await harness.health_status() == SERVING
        assert harness.http("/readyz") == (200, "ok\n")
        assert json.loads(harness.http("/status")[1])["answering"] == "popularity"

    run_with({}, scenario)


def test_serving_from_the_previous_version_shows_in_status_and_metrics() -> None:
    scorers: dict[str, Scorer] = {
        GOOD: ScoreFunction(lambda seq: torch.tensor(ASCENDING).repeat(len(seq), 1)),
        BROKEN: ScoreFunction(nan_scores),
    }

    async def scenario(harness: Harness) -> None:
        harness.events.put(ingested("17850", "85123A"))
        harness.announce(GOOD)
        await eventually(lambda: harness.gauge("model") == 1)
        harness.announce(BROKEN)
        await eventually(
            lambda: (
                harness.server.holder.current is not None
                and harness.server.holder.current.version == BROKEN
            )
        )

        answer = await harness.stub.Recommend(recommend(), timeout=5)
        await eventually(lambda: harness.gauge("previous_model") == 1)

        assert answer.model_version == GOOD
        assert answer.fallback
        assert [item.item_id for item in answer.items] == ["21730", "22752"]
        assert await harness.health_status() == SERVING
        assert harness.gauge("model") == 0
        assert json.loads(harness.http("/status")[1]) == {
            "serving": True,
            "answering": "previous_model",
            "fallback": True,
            "model_version": BROKEN,
            "previous_version": GOOD,
            "fallback_reason": "non_finite_scores",
            "search_index_version": None,
        }
        assert (
            count(
                harness.registry,
                "recops_inference_fallbacks_total",
                reason="non_finite_scores",
                answered_by="previous_model",
            )
            == 1
        )
        assert (
            count(
                harness.registry,
                "recops_inference_serving_model_info",
                model_name="sequential-recommender",
                version=BROKEN,
                previous_version=GOOD,
            )
            == 1
        )

    run_with(scorers, scenario)


def test_a_lone_broken_version_is_answered_around_by_popularity_and_still_serves() -> (
    None
):
    async def scenario(harness: Harness) -> None:
        harness.events.put(ingested("17850", "85123A"))
        harness.announce(BROKEN)
        await eventually(lambda: harness.server.holder.current is not None)

        answer = await harness.stub.Recommend(recommend(), timeout=5)
        await eventually(lambda: harness.gauge("popularity") == 1)

        assert answer.model_version == "popularity"
        assert await harness.health_status() == SERVING

    run_with({BROKEN: ScoreFunction(nan_scores)}, scenario)


# Shutdown: NOT_SERVING at once, requests in flight drained within the grace


async def next_status(watch: grpc.aio.UnaryStreamCall) -> int:
    response = await watch.read()
    assert response is not grpc.aio.EOF
    return int(response.status)


def test_stopping_turns_not_serving_first_and_answers_the_request_in_flight() -> None:
    scorer = GatedScorer(ASCENDING)

    async def scenario(harness: Harness) -> None:
        harness.events.put(ingested("17850", "85123A"))
        harness.announce(GOOD)
        await eventually(lambda: harness.gauge("model") == 1)
        watch = harness.health.Watch(
            health_pb2.HealthCheckRequest(service=""), timeout=30
        )
        assert await next_status(watch) == SERVING

        in_flight = harness.stub.Recommend(recommend(), timeout=30)
        await asyncio.to_thread(scorer.entered.wait, 30)
        stopping = asyncio.create_task(harness.server.stop())
        status_while_draining = await next_status(watch)
        watch.cancel()  # an open watch would hold the server for the whole grace
        readyz_while_draining = await asyncio.to_thread(harness.http, "/readyz")
        scorer.gate.set()
        answer = await in_flight
        await stopping

        assert status_while_draining == NOT_SERVING
        assert readyz_while_draining == (503, "shutting down\n")
        assert answer.model_version == GOOD
        assert [item.item_id for item in answer.items] == ["21730", "22752"]
        assert (
            count(
                harness.registry,
                "recops_inference_requests_total",
                method="Recommend",
                code="OK",
            )
            == 1
        )

    run_with({GOOD: scorer}, scenario)


def test_a_request_still_scoring_when_the_grace_period_ends_is_cut_off() -> None:
    scorer = GatedScorer(ASCENDING)

    async def scenario(harness: Harness) -> None:
        harness.events.put(ingested("17850", "85123A"))
        harness.announce(GOOD)
        await eventually(lambda: harness.gauge("model") == 1)

        in_flight = harness.stub.Recommend(recommend(), timeout=30)
        await asyncio.to_thread(scorer.entered.wait, 30)
        try:
            await harness.server.stop()  # returns although the model never does
            with pytest.raises(grpc.aio.AioRpcError) as cut_off:
                await in_flight
        finally:
            scorer.gate.set()

        assert cut_off.value.code() in (
            grpc.StatusCode.CANCELLED,
            grpc.StatusCode.UNAVAILABLE,
        )

    run_with({GOOD: scorer}, scenario, grace_seconds=0.1)


def test_asking_for_cuda_where_torch_sees_no_gpu_is_a_settings_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)

    with pytest.raises(SettingsError, match="device is cuda, but torch sees no GPU"):
        scoring_device("cuda")
    assert scoring_device("auto") == torch.device("cpu")
