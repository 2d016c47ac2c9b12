"""Alerts as the operator receives them on the ALERTS topic."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Protocol

from confluent_kafka import KafkaError, Message, Producer

from eventbus import encode
from eventbus.contracts import Alert, AlertSeverity, AlertState
from monitor.errors import PublishError
from monitor.rules import AlertChange

logger = logging.getLogger(__name__)

_STATES = {
    AlertChange.FIRING: AlertState.ALERT_STATE_FIRING,
    AlertChange.RESOLVED: AlertState.ALERT_STATE_RESOLVED,
}


def build_alert(
    *,
    rule: str,
    change: AlertChange,
    value: float,
    threshold: float,
    labels: Mapping[str, str],
    summary: str,
    at: datetime,
) -> Alert:
    """One alert message for a rule that started or stopped firing."""
    alert = Alert(
        alert_id=uuid.uuid4().hex,
        rule=rule,
        severity=AlertSeverity.ALERT_SEVERITY_WARNING,
        state=_STATES[change],
        value=value,
        threshold=threshold,
        labels=dict(labels),
        summary=summary,
    )
    alert.at.FromDatetime(at)
    return alert


class AlertPublisher(Protocol):
    """Where alerts go."""

    def publish(self, alert: Alert) -> None:
        """Deliver one alert or raise :class:`PublishError`."""
        ...


class KafkaAlertPublisher:
    """Publishes alerts to the ALERTS topic and waits for the acknowledgement.

    A retried alert keeps its ``alert_id``, so a reader can drop the copy a
    timed-out first attempt may still have written.
    """

    def __init__(
        self, producer: Producer, topic: str, *, timeout_seconds: float
    ) -> None:
        self._producer = producer
        self._topic = topic
        self._timeout_seconds = timeout_seconds

    def publish(self, alert: Alert) -> None:
        value, encoded_headers = encode(alert)
        headers: list[tuple[str, str | bytes | None]] = list(encoded_headers)
        errors: list[KafkaError] = []
        acknowledged: list[Message] = []

        def on_delivery(error: KafkaError | None, message: Message) -> None:
            if error is None:
                acknowledged.append(message)
            else:
                errors.append(error)

        self._producer.produce(
            self._topic,
            value=value,
            key=alert.rule.encode(),
            headers=headers,
            on_delivery=on_delivery,
        )
        self._producer.flush(self._timeout_seconds)

        if errors:
            raise PublishError(f"alert {alert.alert_id} refused: {errors[0].str()}")
        if not acknowledged:
            raise PublishError(f"alert {alert.alert_id} not acknowledged in time")
        logger.info(
            "published alert",
            extra={
                "alert_id": alert.alert_id,
                "rule": alert.rule,
                "topic": self._topic,
            },
        )
