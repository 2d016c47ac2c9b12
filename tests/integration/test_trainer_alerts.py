"""A refused model's alert, published by the trainer and read back from ALERTS."""

from __future__ import annotations

import time
import uuid

from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from eventbus import KafkaSettings, Topic, decode
from eventbus.contracts import Alert
from trainer.gate import decide
from trainer.publish import KafkaAlertPublisher, report_refusal


def read_alerts(settings: KafkaSettings) -> list[tuple[bytes, Alert]]:
    """Every record on the ALERTS topic, with its key."""
    consumer = Consumer(settings.consumer_config(f"test-{uuid.uuid4().hex[:8]}"))
    consumer.assign([TopicPartition(settings.topic(Topic.ALERTS), 0, OFFSET_BEGINNING)])
    alerts: list[tuple[bytes, Alert]] = []
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            record = consumer.poll(timeout=1.0 if alerts else 5.0)
            if record is None and alerts:
                break
            if record is not None and not record.error():
                alert = decode(Alert, record.value(), record.headers())
                alerts.append((record.key(), alert))
    finally:
        consumer.close()
    return alerts


def test_a_refused_candidate_is_published_as_an_alert_the_cluster_keeps(
    kafka_settings: KafkaSettings,
) -> None:
    decision = decide(
        candidate_metrics={"ndcg@10": 0.09},
        serving_metrics={"ndcg@10": 0.14},
        metric="ndcg@10",
        tolerance=0.02,
        serving_version="20261201T000000Z-00000001",
    )
    publisher = KafkaAlertPublisher(kafka_settings, timeout_seconds=30)

    sent = report_refusal(
        decision,
        publisher,
        model_name="sequential-recommender",
        version="20261202T000000Z-00000002",
    )

    [(key, received)] = read_alerts(kafka_settings)
    assert key == b"ModelRefused"
    assert received == sent
    assert received.labels["model_version"] == "20261202T000000Z-00000002"
    assert received.value == 0.09
    assert "0.1400" in received.summary
