"""The inference service put together: gRPC, health, feeds and metrics.

:class:`InferenceServer` has an explicit lifecycle. ``start`` opens the
metrics endpoint, starts the purchase-history and model feeds and begins
serving gRPC; health turns SERVING as soon as an answer is possible (a model
has loaded or a purchase has been seen). ``stop`` turns health NOT_SERVING,
lets requests in flight finish within the grace period, then stops the feeds.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from wsgiref.simple_server import WSGIServer

import grpc
import torch
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from prometheus_client import CollectorRegistry, start_http_server
from recops.v1 import storefront_pb2_grpc

from eventbus import KafkaSettings
from eventbus.topics import Topic
from inference.artifact import load_model
from inference.batching import MicroBatcher
from inference.feeds import KafkaRecordSource, TopicTail
from inference.history import PurchaseHistory, PurchaseHistoryFeed
from inference.metrics import InferenceMetrics
from inference.model import ModelHolder
from inference.model_feed import ModelFeed
from inference.recommender import Recommendation, Recommender, ShopperQuery
from inference.service import SERVICE_NAME, StorefrontService
from inference.settings import InferenceSettings

logger = logging.getLogger(__name__)

HEALTH_SERVICES = ("", SERVICE_NAME)
READINESS_POLL_SECONDS = 0.2

# The generated gRPC module carries no annotations; give its one entry a type.
_add_storefront_servicer: Callable[[StorefrontService, grpc.aio.Server], None] = (
    storefront_pb2_grpc.add_StorefrontServicer_to_server
)


def scoring_device(setting: str) -> torch.device:
    """The device models score on: CUDA when asked for or available, else CPU."""
    if setting == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(setting)


class InferenceServer:
    """Serves Recommend over gRPC from the newest good model and live history."""

    def __init__(
        self,
        settings: InferenceSettings,
        kafka: KafkaSettings,
        *,
        registry: CollectorRegistry | None = None,
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
        self._tails = self._build_tails(kafka)
        self._health: health.aio.HealthServicer | None = None
        self._grpc: grpc.aio.Server | None = None
        self._metrics_http: WSGIServer | None = None
        self._readiness: asyncio.Task[None] | None = None

    def _build_tails(self, kafka: KafkaSettings) -> list[TopicTail]:
        model_feed = ModelFeed(
            holder=self.holder,
            loader=functools.partial(load_model, device=self.device),
            metrics=self.metrics,
            model_name=self.settings.model_name,
        )
        history_feed = PurchaseHistoryFeed(self.history, self.metrics)
        return [
            TopicTail(
                name="model-feed",
                source_factory=functools.partial(
                    KafkaRecordSource, kafka, kafka.topic(Topic.MODEL_READY)
                ),
                handler=model_feed,
                poll_timeout_seconds=self.settings.poll_timeout_seconds,
            ),
            TopicTail(
                name="history-feed",
                source_factory=functools.partial(
                    KafkaRecordSource, kafka, kafka.topic(Topic.INGESTED_EVENTS)
                ),
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
        self._readiness = asyncio.create_task(self._serve_when_ready(health_servicer))
        logger.info(
            "serving",
            extra={
                "grpc_port": self.grpc_port,
                "metrics_port": self.metrics_port,
                "device": str(self.device),
            },
        )

    async def stop(self) -> None:
        """Stop taking requests, drain those in flight, then stop the feeds."""
        logger.info(
            "shutting down",
            extra={"grace_seconds": self.settings.shutdown_grace_seconds},
        )
        if self._readiness is not None:
            self._readiness.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._readiness
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
        _add_storefront_servicer(StorefrontService(self.batcher, self.metrics), server)
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

    async def _serve_when_ready(
        self, health_servicer: health.aio.HealthServicer
    ) -> None:
        while not self.recommender.can_answer():
            await asyncio.sleep(READINESS_POLL_SECONDS)
        for service in HEALTH_SERVICES:
            await health_servicer.set(service, health_pb2.HealthCheckResponse.SERVING)
        logger.info("health SERVING")

    def _start_metrics_endpoint(self) -> None:
        self._metrics_http, _ = start_http_server(
            self.settings.metrics_port,
            addr=self.settings.metrics_host,
            registry=self.registry,
        )
        self.metrics_port = self._metrics_http.server_port

    def _stop_background_work(self) -> None:
        for tail in self._tails:
            tail.stop()
        self._scoring_executor.shutdown(wait=True)
        if self._metrics_http is not None:
            self._metrics_http.shutdown()
            self._metrics_http.server_close()
