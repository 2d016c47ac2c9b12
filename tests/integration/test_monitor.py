"""The monitor against a real cluster: real lag raises and clears one alert."""

from __future__ import annotations

import time
import urllib.request
import uuid
from collections.abc import Iterator

import pytest
from confluent_kafka import (
    Consumer,
    Message,
    Producer,
    TopicPartition,
)
from service_processes import ServiceProcess, service_env

from eventbus import KafkaSettings, Topic, decode, encode
from eventbus.contracts import Alert, AlertState, BehaviourEvent, BehaviourType
from eventbus.topics import TOPIC_SPECS

EVENTS = 300
THRESHOLD = 100


@pytest.fixture
def group() -> str:
    return f"recops-ingest-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def monitor(kafka_settings: KafkaSettings, group: str) -> Iterator[ServiceProcess]:
    env = service_env(
        RECOPS_KAFKA_BOOTSTRAP=kafka_settings.bootstrap_servers,
        RECOPS_TOPIC_PREFIX=kafka_settings.topic_prefix,
        RECOPS_MONITOR_WATCHED_GROUP=group,
        RECOPS_MONITOR_LAG_THRESHOLD_EVENTS=str(THRESHOLD),
        RECOPS_MONITOR_LAG_FOR_SECONDS="2",
        RECOPS_MONITOR_EVALUATION_INTERVAL_SECONDS="0.5",
        RECOPS_MONITOR_METRICS_PORT="0",
    )
    process = ServiceProcess("monitor", env)
    try:
        yield process
    finally:
        process.close()


def commit(
    settings: KafkaSettings, group: str, offsets: dict[TopicPartition, int]
) -> None:
    """Set the group's committed offsets as a consumer outside the group would."""
    consumer = Consumer(settings.consumer_config(group))
    try:
        consumer.commit(
            offsets=[
                TopicPartition(tp.topic, tp.partition, o) for tp, o in offsets.items()
            ],
            asynchronous=False,
        )
    finally:
        consumer.close()


def produce_purchases(settings: KafkaSettings, count: int) -> dict[TopicPartition, int]:
    """Send ``count`` purchases; return each partition's end offset after them."""
    topic = settings.topic(Topic.BEHAVIOUR_EVENTS)
    producer = Producer(settings.producer_config())
    ends: dict[TopicPartition, int] = {}

    def on_delivery(error: object, record: Message) -> None:
        assert error is None, error
        key = TopicPartition(topic, record.partition())
        ends[key] = max(ends.get(key, 0), record.offset() + 1)

    for number in range(count):
        event = BehaviourEvent(
            event_id=f"monitor-test-{number}",
            type=BehaviourType.BEHAVIOUR_TYPE_PURCHASE,
            user_id=str(12000 + number % 50),
            item_id="85123A",
            quantity=1,
            price=2.55,
            source="monitor-test",
        )
        value, headers = encode(event)
        producer.produce(
            topic,
            value=value,
            key=event.user_id.encode(),
            headers=headers,
            on_delivery=on_delivery,
        )
    assert producer.flush(30) == 0
    return ends


def partitions_of(topic: Topic, settings: KafkaSettings) -> list[TopicPartition]:
    (spec,) = [spec for spec in TOPIC_SPECS if spec.topic is topic]
    return [TopicPartition(settings.topic(topic), p) for p in range(spec.partitions)]


class AlertReader:
    def __init__(self, settings: KafkaSettings) -> None:
        self.consumer = Consumer(settings.consumer_config(f"alerts-{uuid.uuid4().hex}"))
        self.consumer.subscribe([settings.topic(Topic.ALERTS)])
        self.alerts: list[Alert] = []

    def wait_for(self, state: int, timeout_seconds: float) -> Alert:
        deadline = time.monotonic() + timeout_seconds
        while time.monotonic() < deadline:
            self.read_for(0.5)
            matching = [alert for alert in self.alerts if alert.state == state]
            if matching:
                return matching[0]
        raise AssertionError(f"no alert in state {state}; saw {self.alerts}")

    def read_for(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            record = self.consumer.poll(0.2)
            if record is None or record.error():
                continue
            self.alerts.append(decode(Alert, record.value(), record.headers()))


def test_lag_held_above_threshold_fires_once_and_resolves_once_caught_up(
    kafka_settings: KafkaSettings, group: str, monitor: ServiceProcess
) -> None:
    behind = partitions_of(Topic.BEHAVIOUR_EVENTS, kafka_settings)
    commit(kafka_settings, group, dict.fromkeys(behind, 0))
    ends = produce_purchases(kafka_settings, EVENTS)
    alerts = AlertReader(kafka_settings)

    firing = alerts.wait_for(AlertState.ALERT_STATE_FIRING, timeout_seconds=30)
    port = monitor.wait_for_log("serving metrics")["port"]
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics") as response:
        exposed = response.read()
    commit(kafka_settings, group, ends)
    resolved = alerts.wait_for(AlertState.ALERT_STATE_RESOLVED, timeout_seconds=30)
    alerts.read_for(2.0)
    alerts.consumer.close()

    topic = kafka_settings.topic(Topic.BEHAVIOUR_EVENTS)
    assert firing.rule == "ConsumerLagHigh"
    assert (firing.value, firing.threshold) == (EVENTS, THRESHOLD)
    assert dict(firing.labels) == {"group": group, "topic": topic}
    assert resolved.value == 0
    assert [a.state for a in alerts.alerts] == [
        AlertState.ALERT_STATE_FIRING,
        AlertState.ALERT_STATE_RESOLVED,
    ]
    gauge = (
        f'recops_monitor_consumer_group_lag_events{{group="{group}",topic="{topic}"}}'
    )
    assert f"{gauge} {float(EVENTS)}".encode() in exposed
    assert monitor.terminate() == 0
