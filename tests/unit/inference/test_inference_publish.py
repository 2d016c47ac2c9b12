from typing import Any

from confluent_kafka import KafkaError
from inference_fakes import count
from prometheus_client import CollectorRegistry

from eventbus import KafkaSettings, decode
from eventbus.contracts import Alert
from eventbus.topics import Topic
from inference.metrics import InferenceMetrics
from inference.publish import KafkaRecordPublisher

PUBLISHED = "recops_inference_published_records_total"


class FakeProducer:
    """Holds produced records; delivers, fails or refuses them when told."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config
        self.records: list[dict[str, Any]] = []
        self.waiting: list[Any] = []
        self.error: KafkaError | None = None
        self.full = False

    def produce(self, topic: str, **record: Any) -> None:
        if self.full:
            raise BufferError("local queue full")
        self.records.append({"topic": topic, **record})
        self.waiting.append(record["on_delivery"])

    def poll(self, timeout: float) -> int:
        delivered, self.waiting = self.waiting, []
        for on_delivery in delivered:
            on_delivery(self.error, None)
        return len(delivered)

    def flush(self, timeout: float) -> int:
        return len(self.waiting)


def publisher_with(
    producer: FakeProducer, registry: CollectorRegistry
) -> KafkaRecordPublisher:
    return KafkaRecordPublisher(
        KafkaSettings(topic_prefix="shop."),
        Topic.ALERTS,
        InferenceMetrics(registry),
        producer_factory=lambda config: producer,  # type: ignore[arg-type,return-value]
    )


def published(registry: CollectorRegistry, outcome: str) -> float:
    return count(registry, PUBLISHED, topic="alerts", outcome=outcome)


def test_a_published_record_goes_to_the_prefixed_topic_and_is_counted() -> None:
    producer, registry = FakeProducer({}), CollectorRegistry()
    publisher = publisher_with(producer, registry)

    publisher.publish("ModelVersionNotLoaded", Alert(alert_id="a-1"))

    [record] = producer.records
    assert record["topic"] == "shop.alerts"
    assert record["key"] == b"ModelVersionNotLoaded"
    assert decode(Alert, record["value"], record["headers"]).alert_id == "a-1"
    assert published(registry, "delivered") == 1


def test_a_failed_delivery_is_counted_and_never_raised() -> None:
    producer, registry = FakeProducer({}), CollectorRegistry()
    producer.error = KafkaError(KafkaError._MSG_TIMED_OUT)
    publisher = publisher_with(producer, registry)

    publisher.publish("rule", Alert(alert_id="a-1"))

    assert published(registry, "failed") == 1
    assert published(registry, "delivered") == 0


def test_a_record_the_producer_cannot_queue_is_counted_and_never_raised() -> None:
    producer, registry = FakeProducer({}), CollectorRegistry()
    producer.full = True
    publisher = publisher_with(producer, registry)

    publisher.publish("rule", Alert(alert_id="a-1"))

    assert producer.records == []
    assert published(registry, "failed") == 1


def test_records_still_in_flight_at_close_are_counted_as_failed() -> None:
    producer, registry = FakeProducer({}), CollectorRegistry()
    publisher = publisher_with(producer, registry)
    producer.poll = lambda timeout: 0  # type: ignore[method-assign]

    publisher.publish("rule", Alert(alert_id="a-1"))
    publisher.publish("rule", Alert(alert_id="a-2"))
    publisher.close(0.1)

    assert published(registry, "failed") == 2
