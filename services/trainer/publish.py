"""Announce a stored model version on MODEL_READY, and a refused one on ALERTS.

Both publishers use an idempotent ``acks=all`` producer and return only once
the cluster acknowledged the record, raising :class:`PublishError` otherwise.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Protocol

from confluent_kafka import KafkaError, KafkaException, Message, Producer
from google.protobuf.message import Message as ProtoMessage

from eventbus import KafkaSettings, Topic, encode
from eventbus.contracts import Alert, AlertSeverity, AlertState, ModelReady
from trainer.artifact import StoredModel
from trainer.errors import PublishError
from trainer.gate import GateDecision

logger = logging.getLogger(__name__)


REFUSAL_RULE = "ModelRefused"


class ModelReadyPublisher(Protocol):
    """Where ModelReady events go; raises PublishError unless acknowledged."""

    def publish(self, event: ModelReady) -> None: ...


class AlertPublisher(Protocol):
    """Where the trainer's alerts go; raises PublishError unless acknowledged."""

    def publish(self, alert: Alert) -> None: ...


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


def refusal_alert(
    decision: GateDecision,
    *,
    model_name: str,
    version: str,
    at: datetime | None = None,
) -> Alert:
    """The alert that tells operators the gate refused a candidate version.

    ``value`` is the candidate's gate metric and ``threshold`` the lowest
    value it needed (0 when there was none to compare with); the summary
    holds both models' values and every reason. The id is the same for
    every attempt to publish one refusal, so readers can drop copies.
    """
    labels = {
        "service": "trainer",
        "model_name": model_name,
        "model_version": version,
        "metric": decision.metric,
    }
    if decision.serving_version is not None:
        labels["serving_version"] = decision.serving_version
    summary = (
        f"{model_name} {version} refused, {decision.metric} "
        f"{_value(decision.candidate_value)} against serving "
        f"{_value(decision.serving_value)}: {'; '.join(decision.reasons)}"
    )
    alert = Alert(
        alert_id=f"{REFUSAL_RULE}-{model_name}-{version}",
        rule=REFUSAL_RULE,
        severity=AlertSeverity.ALERT_SEVERITY_WARNING,
        state=AlertState.ALERT_STATE_FIRING,
        value=_finite_or_zero(decision.candidate_value),
        threshold=_finite_or_zero(decision.threshold),
        labels=labels,
        summary=summary,
    )
    alert.at.FromDatetime(at or datetime.now(UTC))
    return alert


def report_refusal(
    decision: GateDecision,
    publisher: AlertPublisher,
    *,
    model_name: str,
    version: str,
) -> Alert:
    """Log a refused candidate and publish its alert; PublishError if unacknowledged."""
    alert = refusal_alert(decision, model_name=model_name, version=version)
    logger.error(
        "model version refused by the quality gate: %s",
        "; ".join(decision.reasons),
        extra={
            "model_version": version,
            "metric": decision.metric,
            "candidate_value": decision.candidate_value,
            "serving_value": decision.serving_value,
            "serving_version": decision.serving_version,
        },
    )
    publisher.publish(alert)
    return alert


def _value(value: float | None) -> str:
    return "none" if value is None else f"{value:.4f}"


def _finite_or_zero(value: float | None) -> float:
    return value if value is not None and math.isfinite(value) else 0.0


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
        _produce_acknowledged(
            self._producer,
            self._topic,
            key=event.model_name,
            message=event,
            timeout_seconds=self._timeout_seconds,
            what=f"ModelReady for {event.version}",
        )
        logger.info(
            "published ModelReady",
            extra={"topic": self._topic, "model_version": event.version},
        )


class KafkaAlertPublisher:
    """Publishes the trainer's alerts to ALERTS and waits for the ack.

    The record key is the rule, as the monitor keys its alerts.
    """

    def __init__(
        self,
        kafka: KafkaSettings,
        *,
        timeout_seconds: float = 30.0,
        producer_factory: ProducerFactory = Producer,
    ) -> None:
        self._topic = kafka.topic(Topic.ALERTS)
        self._timeout_seconds = timeout_seconds
        self._producer = producer_factory(kafka.producer_config())

    def publish(self, alert: Alert) -> None:
        _produce_acknowledged(
            self._producer,
            self._topic,
            key=alert.rule,
            message=alert,
            timeout_seconds=self._timeout_seconds,
            what=f"alert {alert.alert_id}",
        )
        logger.info(
            "published alert",
            extra={"topic": self._topic, "alert_id": alert.alert_id},
        )


def _produce_acknowledged(
    producer: Producer,
    topic: str,
    *,
    key: str,
    message: ProtoMessage,
    timeout_seconds: float,
    what: str,
) -> None:
    """Produce one record and flush; PublishError unless it was acknowledged."""
    value, headers = encode(message)
    failures: list[KafkaError] = []

    def on_delivery(error: KafkaError | None, _message: Message) -> None:
        if error is not None:
            failures.append(error)

    try:
        producer.produce(
            topic,
            key=key.encode(),
            value=value,
            headers=list(headers),
            on_delivery=on_delivery,
        )
    except (BufferError, KafkaException) as exc:
        raise PublishError(f"could not queue {what}: {exc}") from exc
    pending = producer.flush(timeout_seconds)

    if pending or failures:
        reason = failures[0].str() if failures else "no acknowledgement in time"
        raise PublishError(f"{what} not published: {reason}")
