"""Records the inference service writes: alerts and served recommendations.

A :class:`RecordPublisher` never blocks its caller on the cluster and never
raises: a record is queued and the caller moves on; its delivery, or its
failure, is counted later in ``recops_inference_published_records_total``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Protocol

from confluent_kafka import KafkaError, KafkaException, Message, Producer
from google.protobuf.message import Message as ProtoMessage

from eventbus import KafkaSettings, encode
from eventbus.topics import Topic
from inference.metrics import InferenceMetrics

logger = logging.getLogger(__name__)

ProducerFactory = Callable[[dict[str, Any]], Producer]

DELIVERED = "delivered"
FAILED = "failed"


class RecordPublisher(Protocol):
    """Where one topic's records go; queues and returns, never raises."""

    def publish(self, key: str, message: ProtoMessage) -> None: ...

    def close(self, timeout_seconds: float) -> None: ...


class KafkaRecordPublisher:
    """Fire-and-forget writer of one topic with an idempotent producer.

    Delivery reports are collected on every later call and on ``close``,
    which waits up to its timeout for the records still in flight.
    """

    def __init__(
        self,
        kafka: KafkaSettings,
        topic: Topic,
        metrics: InferenceMetrics,
        *,
        producer_factory: ProducerFactory = Producer,
    ) -> None:
        self._label = topic.value
        self._topic = kafka.topic(topic)
        self._metrics = metrics
        self._producer = producer_factory(kafka.producer_config())

    def publish(self, key: str, message: ProtoMessage) -> None:
        value, headers = encode(message)
        try:
            self._producer.produce(
                self._topic,
                key=key.encode(),
                value=value,
                headers=list(headers),
                on_delivery=self._on_delivery,
            )
        except (BufferError, KafkaException) as exc:
            self._count(FAILED)
            logger.warning("record not queued: %s", exc, extra={"topic": self._topic})
        self._producer.poll(0)

    def close(self, timeout_seconds: float) -> None:
        pending = self._producer.flush(timeout_seconds)
        if pending:
            self._metrics.published_records.labels(self._label, FAILED).inc(pending)
            logger.warning(
                "records not delivered before close",
                extra={"topic": self._topic, "pending": pending},
            )

    def _on_delivery(self, error: KafkaError | None, _message: Message) -> None:
        if error is None:
            self._count(DELIVERED)
            return
        self._count(FAILED)
        logger.warning(
            "record not delivered: %s", error.str(), extra={"topic": self._topic}
        )

    def _count(self, outcome: str) -> None:
        self._metrics.published_records.labels(self._label, outcome).inc()
