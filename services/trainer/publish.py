"""Announce a stored model version on the MODEL_READY topic."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any, Protocol

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from eventbus import KafkaSettings, Topic, encode
from eventbus.contracts import ModelReady
from trainer.artifact import StoredModel
from trainer.errors import PublishError

logger = logging.getLogger(__name__)


class ModelReadyPublisher(Protocol):
    """Where ModelReady events go; raises PublishError unless acknowledged."""

    def publish(self, event: ModelReady) -> None: ...


def model_ready_event(stored: StoredModel) -> ModelReady:
    """The ModelReady event that announces ``stored``."""
    manifest = stored.manifest
    event = ModelReady(
        model_name=manifest.model_name,
        version=manifest.version,
        artifact_uri=stored.uri,
        size_bytes=manifest.size_bytes,
        sha256=manifest.sha256,
        metrics=manifest.metrics,
        snapshot_id=manifest.snapshot_id,
    )
    event.created_at.FromDatetime(datetime.fromisoformat(manifest.created_at))
    return event


ProducerFactory = Callable[[dict[str, Any]], Producer]


class KafkaModelReadyPublisher:
    """Publishes with an idempotent ``acks=all`` producer and waits for the ack.

    The record key is the model name, so every version of a model lands on
    the topic's one partition in order and the newest record wins.
    """

    def __init__(
        self,
        kafka: KafkaSettings,
        *,
        timeout_seconds: float = 30.0,
        producer_factory: ProducerFactory = Producer,
    ) -> None:
        self._topic = kafka.topic(Topic.MODEL_READY)
        self._timeout_seconds = timeout_seconds
        self._producer = producer_factory(kafka.producer_config())

    def publish(self, event: ModelReady) -> None:
        value, headers = encode(event)
        failures: list[KafkaError] = []

        def on_delivery(error: KafkaError | None, _message: Message) -> None:
            if error is not None:
                failures.append(error)

        try:
            self._producer.produce(
                self._topic,
                key=event.model_name.encode(),
                value=value,
                headers=list(headers),
                on_delivery=on_delivery,
            )
        except (BufferError, KafkaException) as exc:
            raise PublishError(f"could not queue ModelReady: {exc}") from exc
        pending = self._producer.flush(self._timeout_seconds)

        if pending or failures:
            reason = failures[0].str() if failures else "no acknowledgement in time"
            raise PublishError(
                f"ModelReady for {event.version} not published: {reason}"
            )
        logger.info(
            "published ModelReady",
            extra={"topic": self._topic, "model_version": event.version},
        )
