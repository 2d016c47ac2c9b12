"""The inference service against the real cluster: history, models, health."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import grpc
import pytest
import torch
from confluent_kafka import Producer
from google.protobuf.message import Message
from grpc_health.v1 import health_pb2, health_pb2_grpc
from recops.v1 import storefront_pb2

from eventbus import KafkaSettings, encode
from eventbus.contracts import BehaviourEvent, BehaviourType, ModelReady
from eventbus.topics import Topic
from inference.artifact import ArtifactMetadata, write_artifact
from inference.client import StorefrontClient
from inference.server import InferenceServer
from inference.settings import InferenceSettings

REPO = Path(__file__).resolve().parent.parent.parent
ITEM_IDS = ("", "85123A", "71053", "84406B", "84029G", "84029E", "22752", "21730")
PURCHASES = [
    ("17850", "85123A"),
    ("17850", "71053"),
    ("12583", "84406B"),
    ("12583", "22752"),
    ("13047", "22752"),
    ("", "22752"),
]
T = TypeVar("T")


class ItemAffinity(torch.nn.Module):
    """Scores items by their likeness to what the shopper bought."""

    def __init__(self, item_count: int) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(7)
        self.embedding = torch.nn.Parameter(
            torch.randn(item_count, 8, generator=generator)
        )

    def forward(self, item_seq: torch.Tensor) -> torch.Tensor:
        shopper = self.embedding[item_seq].sum(dim=1)
        return shopper @ self.embedding.T


@dataclasses.dataclass
class RunningServer:
    server: InferenceServer
    target: str

    def metrics_text(self) -> str:
        return self.http("/metrics")

    def http(self, path: str) -> str:
        url = f"http://127.0.0.1:{self.server.metrics_port}{path}"
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.read().decode()

    def health(self, service: str = "") -> int:
        with grpc.insecure_channel(self.target) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            request = health_pb2.HealthCheckRequest(service=service)
            return stub.Check(request, timeout=5).status


@pytest.fixture
def inference(kafka_settings: KafkaSettings) -> Iterator[RunningServer]:
    """The real server, in this process on free ports, with its own event loop."""
    settings = InferenceSettings(
        grpc_port=0,
        metrics_port=0,
        device="cpu",
        poll_timeout_seconds=0.2,
        shutdown_grace_seconds=1.0,
    )
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    server = InferenceServer(settings, kafka_settings)
    asyncio.run_coroutine_threadsafe(server.start(), loop).result(30)
    try:
        yield RunningServer(server, f"127.0.0.1:{server.grpc_port}")
    finally:
        asyncio.run_coroutine_threadsafe(server.stop(), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


def publish(
    settings: KafkaSettings,
    topic: Topic,
    records: list[tuple[str, Message, dict[str, str]]],
) -> None:
    producer = Producer(settings.producer_config())
    for key, message, extra_headers in records:
        value, headers = encode(message)
        headers += [(name, text.encode()) for name, text in extra_headers.items()]
        producer.produce(
            settings.topic(topic), value=value, key=key.encode(), headers=headers
        )
    assert producer.flush(30) == 0


def publish_purchases(settings: KafkaSettings) -> None:
    records = [
        (
            user_id or f"536365-{n}",
            BehaviourEvent(
                event_id=f"536365-{n}",
                type=BehaviourType.BEHAVIOUR_TYPE_PURCHASE,
                user_id=user_id,
                item_id=item_id,
                quantity=1,
                source="replay",
                session_id="536365",
            ),
            {"item-kind": "product"},
        )
        for n, (user_id, item_id) in enumerate(PURCHASES)
    ]
    publish(settings, Topic.INGESTED_EVENTS, records)


def publish_model(settings: KafkaSettings, ready: ModelReady) -> None:
    publish(settings, Topic.MODEL_READY, [(ready.model_name, ready, {})])


def tiny_artifact(directory: Path, version: str) -> ModelReady:
    metadata = ArtifactMetadata(
        model_name="sequential-recommender",
        version=version,
        max_len=4,
        item_ids=ITEM_IDS,
        item_descriptions=tuple(f"item {i}" for i in ITEM_IDS),
        popular_items=(6, 1, 2),
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        module = torch.jit.script(ItemAffinity(len(ITEM_IDS)))
    return write_artifact(module, metadata, directory / version / "model.pt")


def answer_when_ready(
    client: StorefrontClient, user_id: str, k: int, exclude: tuple[str, ...] = ()
) -> storefront_pb2.RecommendResponse | None:
    """Recommend's answer, or None while the service has nothing to answer with."""
    try:
        return client.recommend(user_id, k, exclude)
    except grpc.RpcError as exc:
        if exc.code() is grpc.StatusCode.UNAVAILABLE:
            return None
        raise


def eventually(check: Callable[[], T | None], timeout_s: float = 30.0) -> T:
    """The first truthy result of ``check``, polled until ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.2)
    raise TimeoutError(f"condition not met within {timeout_s}s")


def test_recommend_answers_from_popularity_until_an_announced_model_serves(
    inference: RunningServer, kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    with StorefrontClient(inference.target, deadline_seconds=2.0) as client:
        assert inference.health() == health_pb2.HealthCheckResponse.NOT_SERVING
        assert answer_when_ready(client, "17850", 2) is None

        publish_purchases(kafka_settings)
        # Once every purchase is read: 22752 bought three times, the rest once.
        popular = eventually(
            lambda: (
                (r := answer_when_ready(client, "17850", 2))
                and [item.item_id for item in r.items] == ["22752", "71053"]
                and r
            )
        )
        assert eventually(
            lambda: inference.health() == health_pb2.HealthCheckResponse.SERVING
        )
        assert popular.fallback
        assert popular.model_version == "popularity"

        ready = tiny_artifact(tmp_path, "20261203T190102Z-1a2b3c4d")
        publish_model(kafka_settings, ready)
        answer = eventually(
            lambda: (
                (r := client.recommend("17850", 3, exclude=["84406B"]))
                and r.model_version == ready.version
                and r
            )
        )

    items = [item.item_id for item in answer.items]
    assert len(items) == 3
    assert len(set(items)) == 3
    assert set(items) <= set(ITEM_IDS[1:]) - {"84406B"}
    assert not answer.fallback
    assert answer.request_id
    assert inference.health("recops.v1.Storefront") == (
        health_pb2.HealthCheckResponse.SERVING
    )
    status = eventually(
        lambda: (
            (s := json.loads(inference.http("/status")))["answering"] == "model" and s
        )
    )
    assert status["model_version"] == ready.version
    assert not status["fallback"]


@pytest.mark.parametrize(
    ("user_id", "k", "message"),
    [
        ("17850", 0, "k must be between 1 and 100, got 0"),
        ("17850", -3, "k must be between 1 and 100, got -3"),
        ("17850", 101, "k must be between 1 and 100, got 101"),
        ("", 10, "user_id must not be empty"),
    ],
)
def test_an_invalid_recommend_request_is_refused_with_invalid_argument(
    inference: RunningServer, user_id: str, k: int, message: str
) -> None:
    with (
        StorefrontClient(inference.target) as client,
        pytest.raises(grpc.RpcError) as raised,
    ):
        client.recommend(user_id, k)

    assert raised.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert raised.value.details() == message


def test_a_damaged_artifact_is_counted_and_never_serves(
    inference: RunningServer, kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    good = tiny_artifact(tmp_path, "20261203T190102Z-00000001")
    damaged = tiny_artifact(tmp_path, "20261204T190102Z-00000002")
    damaged.sha256 = "0" * 64
    publish_purchases(kafka_settings)

    publish_model(kafka_settings, good)
    with StorefrontClient(inference.target, deadline_seconds=2.0) as client:
        eventually(lambda: client.recommend("17850", 3).model_version == good.version)
        publish_model(kafka_settings, damaged)
        eventually(
            lambda: (
                'recops_inference_model_loads_total{outcome="checksum_mismatch"} 1.0'
                in inference.metrics_text()
            )
        )
        assert client.recommend("17850", 3).model_version == good.version
    assert f'version="{good.version}"' in inference.metrics_text()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_the_service_process_turns_not_serving_and_exits_cleanly_on_sigterm(
    kafka_settings: KafkaSettings,
) -> None:
    publish_purchases(kafka_settings)
    grpc_port = free_port()
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(
            str(REPO / p) for p in (".", "services", "build/gen")
        ),
        "RECOPS_KAFKA_BOOTSTRAP": kafka_settings.bootstrap_servers,
        "RECOPS_TOPIC_PREFIX": kafka_settings.topic_prefix,
        "RECOPS_INFERENCE_GRPC_PORT": str(grpc_port),
        "RECOPS_INFERENCE_METRICS_PORT": "0",
        "RECOPS_INFERENCE_SHUTDOWN_GRACE_SECONDS": "1",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "inference"], env=env, stderr=subprocess.PIPE, text=True
    )
    try:
        with grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
            grpc.channel_ready_future(channel).result(timeout=60)
            watch = health_pb2_grpc.HealthStub(channel).Watch(
                health_pb2.HealthCheckRequest(service=""), timeout=60
            )
            statuses = [next(watch).status]
            while statuses[-1] != health_pb2.HealthCheckResponse.SERVING:
                statuses.append(next(watch).status)
            process.send_signal(signal.SIGTERM)
            statuses.append(next(watch).status)
        _, log = process.communicate(timeout=30)
    finally:
        process.kill()
        process.wait()

    assert statuses[-1] == health_pb2.HealthCheckResponse.NOT_SERVING
    assert process.returncode == 0
    assert '"message": "stopped"' in log
