"""The inference service put together: gRPC, health, feeds and metrics.

:class:`InferenceServer` has an explicit lifecycle. ``start`` opens the
metrics endpoint, starts the purchase-history and model feeds and begins
serving gRPC. Health follows what can answer: SERVING while a model or
popularity can, NOT_SERVING only while nothing can; serving from a fallback
shows in ``/status`` and in ``recops_inference_answering``. ``stop`` turns
health NOT_SERVING, lets requests in flight finish within the grace period,
then stops the batcher and the feeds.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor

import grpc
import torch
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from prometheus_client import CollectorRegistry
from recops.v1 import storefront_pb2_grpc

from eventbus import KafkaSettings
from eventbus.http import ServiceEndpoint
from eventbus.topics import Topic
from inference.artifact import load_model
from inference.batching import MicroBatcher
from inference.errors import SettingsError
from inference.feeds import KafkaRecordSource, RecordSource, TopicTail
from inference.history import PurchaseHistory, PurchaseHistoryFeed
from inference.metrics import InferenceMetrics
from inference.model import ModelHolder
from inference.model_feed import ModelFeed, ModelLoader
from inference.publish import KafkaRecordPublisher, RecordPublisher
from inference.recommender import (
    AnswerSource,
    Recommendation,
    Recommender,
    ServingStatus,
    ShopperQuery,
)
from inference.search import LoadedSearchIndex, Searcher
from inference.service import SERVICE_NAME, StorefrontService
from inference.settings import InferenceSettings

logger = logging.getLogger(__name__)

HEALTH_SERVICES = ("", SERVICE_NAME)
HEALTH_POLL_SECONDS = 0.2
NOTHING_TO_ANSWER = "no model has loaded and no purchase has been seen yet"

PUBLISH_CLOSE_SECONDS = 2.0

RecordSources = Mapping[Topic, Callable[[], RecordSource]]
RecordPublishers = Mapping[Topic, Callable[[], RecordPublisher]]

# The generated gRPC module carries no annotations; give its one entry a type.
_add_storefront_servicer: Callable[[StorefrontService, grpc.aio.Server], None] = (
    storefront_pb2_grpc.add_StorefrontServicer_to_server
)


def scoring_device(setting: str) -> torch.device:
    """The device models score on: CUDA when asked for or available, else CPU."""
    if setting == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if setting == "cuda" and not torch.cuda.is_available():
        raise SettingsError("device is cuda, but torch sees no GPU")
    return torch.device(setting)


class InferenceServer:
    """Serves Recommend over gRPC from the newest good model and live history.

    For tests, ``record_sources`` replaces the Kafka reader of a topic
    (model-ready, ingested events), ``record_publishers`` the Kafka writer
    of one (alerts, served recommendations) and ``model_loader`` the
    artifact loader. ``search_index`` answers Search; without one, Search
    answers UNAVAILABLE.
    """

    def __init__(
        self,
        settings: InferenceSettings,
        kafka: KafkaSettings,
        *,
        registry: CollectorRegistry | None = None,
        record_sources: RecordSources | None = None,
        record_publishers: RecordPublishers | None = None,
        model_loader: ModelLoader | None = None,
        search_index: LoadedSearchIndex | None = None,
    ) -> None:
        self.settings = settings
        self.registry = registry if registry is not None else CollectorRegistry()
        self.metrics = InferenceMetrics(self.registry)
        self.device = scoring_device(settings.device)
        self.holder = ModelHolder()
        self.history = PurchaseHistory(settings.history_max_items)
        self.recommender = Recommender(self.holder, self.history)
        self.grpc_port = 0
        self.metrics_port = 0

        self._scoring_executor = ThreadPoolExecutor(
            settings.scoring_threads, thread_name_prefix="scoring"
        )
        self.batcher = MicroBatcher[ShopperQuery, Recommendation](
            self.recommender.recommend_batch,
            executor=self._scoring_executor,
            metrics=self.metrics,
            max_batch_size=settings.max_batch_size,
            max_delay_seconds=settings.max_batch_delay_seconds,
            max_queue_size=settings.max_queue_size,
            concurrent_batches=settings.scoring_threads,
        )
        self._search_executor = ThreadPoolExecutor(1, thread_name_prefix="search")
        self.searcher = Searcher(search_index, self._search_executor)
        self.metrics.search_index_loaded.set(0 if search_index is None else 1)
        sources: dict[Topic, Callable[[], RecordSource]] = {
            topic: functools.partial(KafkaRecordSource, kafka, kafka.topic(topic))
            for topic in (Topic.MODEL_READY, Topic.INGESTED_EVENTS)
        }
        sources.update(record_sources or {})
        self._publishers = self._build_publishers(kafka, record_publishers or {})
        loader = model_loader or functools.partial(load_model, device=self.device)
        self._tails = self._build_tails(sources, loader)
        self._health: health.aio.HealthServicer | None = None
        self._grpc: grpc.aio.Server | None = None
        self._endpoint: ServiceEndpoint | None = None
        self._health_watch: asyncio.Task[None] | None = None
        self._stopping = False

    def _build_publishers(
        self, kafka: KafkaSettings, replacements: RecordPublishers
    ) -> dict[Topic, RecordPublisher]:
        publishers: dict[Topic, RecordPublisher] = {}
        for topic in (Topic.ALERTS, Topic.SERVED_RECOMMENDATIONS):
            replacement = replacements.get(topic)
            publishers[topic] = (
                replacement()
                if replacement is not None
                else KafkaRecordPublisher(kafka, topic, self.metrics)
            )
        return publishers

    def _build_tails(
        self, sources: RecordSources, loader: ModelLoader
    ) -> list[TopicTail]:
        model_feed = ModelFeed(
            holder=self.holder,
            loader=loader,
            metrics=self.metrics,
            model_name=self.settings.model_name,
            alerts=self._publishers[Topic.ALERTS],
        )
        history_feed = PurchaseHistoryFeed(self.history, self.metrics)
        return [
            TopicTail(
                name="model-feed",
                source_factory=sources[Topic.MODEL_READY],
                handler=model_feed,
                poll_timeout_seconds=self.settings.poll_timeout_seconds,
            ),
            TopicTail(
                name="history-feed",
                source_factory=sources[Topic.INGESTED_EVENTS],
                handler=history_feed,
                poll_timeout_seconds=self.settings.poll_timeout_seconds,
            ),
        ]

    async def start(self) -> None:
        """Open the metrics endpoint, start the feeds and serve gRPC."""
        self._start_metrics_endpoint()
        for tail in self._tails:
            tail.start()
        await self.batcher.start()
        health_servicer = await self._start_grpc()
        self._health_watch = asyncio.create_task(self._follow_health(health_servicer))
        logger.info(
            "serving",
            extra={
                "grpc_port": self.grpc_port,
                "metrics_port": self.metrics_port,
                "device": str(self.device),
            },
        )

    async def stop(self) -> None:
        """Turn NOT_SERVING, drain requests in flight, then stop the feeds.

        Requests already taken are answered for up to the grace period, and
        cancelled after it; new ones are refused from the start. A second
        call does nothing.
        """
        if self._stopping:
            return
        self._stopping = True
        logger.info(
            "shutting down",
            extra={
                "grace_seconds": self.settings.shutdown_grace_seconds,
                "queue_depth": self.batcher.queue_depth,
            },
        )
        if self._health_watch is not None:
            self._health_watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._health_watch
        if self._health is not None:
            await self._health.enter_graceful_shutdown()

        if self._grpc is not None:
            await self._grpc.stop(self.settings.shutdown_grace_seconds)
        await self.batcher.stop()

        await asyncio.to_thread(self._stop_background_work)
        logger.info("stopped")

    async def _start_grpc(self) -> health.aio.HealthServicer:
        self._health = health_servicer = health.aio.HealthServicer()
        # Without SO_REUSEPORT a second server on the same port fails to start
        # instead of silently sharing the port.
        self._grpc = server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
        storefront = StorefrontService(
            self.batcher,
            self.metrics,
            served=self._publishers[Topic.SERVED_RECOMMENDATIONS],
            searcher=self.searcher,
        )
        _add_storefront_servicer(storefront, server)
        health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
        reflection.enable_server_reflection(
            (SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME), server
        )
        for service in HEALTH_SERVICES:
            await health_servicer.set(
                service, health_pb2.HealthCheckResponse.NOT_SERVING
            )
        address = f"{self.settings.grpc_host}:{self.settings.grpc_port}"
        self.grpc_port = server.add_insecure_port(address)
        await server.start()
        return health_servicer

    async def _follow_health(self, health_servicer: health.aio.HealthServicer) -> None:
        """Keep gRPC health and the answering gauge in step with what answers."""
        reported: AnswerSource | None = None
        first = True
        while True:
            status = self.recommender.status()
            if first or status.answering is not reported:
                await self._report(health_servicer, status)
                reported, first = status.answering, False
            await asyncio.sleep(HEALTH_POLL_SECONDS)

    async def _report(
        self, health_servicer: health.aio.HealthServicer, status: ServingStatus
    ) -> None:
        health_status = (
            health_pb2.HealthCheckResponse.SERVING
            if status.can_answer
            else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        for service in HEALTH_SERVICES:
            await health_servicer.set(service, health_status)
        for source in AnswerSource:
            self.metrics.answering.labels(source.value).set(
                1 if status.answering is source else 0
            )
        context = {
            "answering": status.answering.value if status.answering else None,
            "model_version": status.model_version,
            "previous_version": status.previous_version,
        }
        if status.answering in (None, AnswerSource.MODEL):
            logger.info(
                "health %s",
                "SERVING" if status.can_answer else "NOT_SERVING",
                extra=context,
            )
        else:
            logger.warning("health SERVING from a fallback", extra=context)

    def readiness_problem(self) -> str | None:
        """Why the service cannot take requests now; ``None`` when it can."""
        if self._stopping:
            return "shutting down"
        return None if self.recommender.status().can_answer else NOTHING_TO_ANSWER

    def status_json(self) -> str:
        """What answers Recommend, and which search index answers Search."""
        status = json.loads(self.recommender.status().to_json())
        status["search_index_version"] = self.searcher.version
        return json.dumps(status)

    def _start_metrics_endpoint(self) -> None:
        self._endpoint = ServiceEndpoint(
            self.settings.metrics_port,
            self.registry,
            live=lambda: None,
            ready=self.readiness_problem,
            status=self.status_json,
            host=self.settings.metrics_host,
        ).start()
        self.metrics_port = self._endpoint.port

    def _stop_background_work(self) -> None:
        for tail in self._tails:
            tail.stop()
        # A batch still scoring after the grace period is not waited for here.
        # TODO(#5): the interpreter still joins that thread at exit, so a model
        # that never returns keeps the process from ending.
        self._scoring_executor.shutdown(wait=False, cancel_futures=True)
        self._search_executor.shutdown(wait=False, cancel_futures=True)
        for publisher in self._publishers.values():
            publisher.close(PUBLISH_CLOSE_SECONDS)
        if self._endpoint is not None:
            self._endpoint.stop()
