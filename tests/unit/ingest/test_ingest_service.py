from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException, Message, TopicPartition
from prometheus_client import CollectorRegistry

from eventbus import ContentType, KafkaSettings, encode
from eventbus.contracts import BehaviourEvent
from ingest.errors import TransactionFencedError
from ingest.metrics import IngestMetrics
from ingest.service import IngestService
from ingest.settings import IngestSettings

EventFactory = Callable[..., BehaviourEvent]
RAW = "t.behaviour-events"


class FakeConsumer:
    """Hands out prepared batches and remembers where it was told to seek."""

    def __init__(self, batches: list[list[Message]]) -> None:
        self.batches = batches
        self.seeks: list[tuple[str, int, int]] = []
        self.closed = False

    def subscribe(self, topics: list[str], **callbacks: Any) -> None:
        self.topics = topics

    def consume(self, num_messages: int = 1, timeout: float = -1) -> list[Message]:
        return self.batches.pop(0) if self.batches else []

    def consumer_group_metadata(self) -> object:
        return "group-metadata"

    def seek(self, partition: TopicPartition) -> None:
        self.seeks.append((partition.topic, partition.partition, partition.offset))

    def close(self) -> None:
        self.closed = True


class FakeProducer:
    """Records a transaction log; fails commits with the errors it is given."""

    def __init__(self, commit_errors: list[KafkaError] | None = None) -> None:
        self.commit_errors = commit_errors or []
        self.log: list[str] = []
        self.produced: list[tuple[str, bytes]] = []
        self.offsets: list[list[tuple[str, int, int]]] = []

    def init_transactions(self, timeout: float = -1) -> None:
        self.log.append("init")

    def begin_transaction(self) -> None:
        self.log.append("begin")

    def produce(self, topic: str, **fields: Any) -> None:
        self.produced.append((topic, fields["value"]))

    def poll(self, timeout: float = -1) -> int:
        return 0

    def send_offsets_to_transaction(
        self, positions: list[TopicPartition], group_metadata: Any, timeout: float = -1
    ) -> None:
        self.offsets.append([(p.topic, p.partition, p.offset) for p in positions])

    def commit_transaction(self, timeout: float = -1) -> None:
        if self.commit_errors:
            self.log.append("commit failed")
            raise KafkaException(self.commit_errors.pop(0))
        self.log.append("commit")

    def abort_transaction(self, timeout: float = -1) -> None:
        self.log.append("abort")


def settings() -> IngestSettings:
    return IngestSettings(kafka=KafkaSettings(topic_prefix="t."))


def raw(event: BehaviourEvent, partition: int, offset: int) -> Message:
    value, headers = encode(event, ContentType.PROTOBUF)
    return Message(
        topic=RAW, partition=partition, offset=offset, value=value, headers=headers
    )


def service(
    consumer: FakeConsumer, producer: FakeProducer
) -> tuple[IngestService, CollectorRegistry]:
    registry = CollectorRegistry()
    return IngestService(settings(), IngestMetrics(registry), consumer, producer), (
        registry
    )


def test_a_batch_and_its_offsets_are_committed_in_one_transaction(
    make_event: EventFactory,
) -> None:
    batch = [
        raw(make_event(event_id="a"), 0, 10),
        raw(make_event(event_id="b", event_time=None), 3, 5),
        raw(make_event(event_id="c"), 0, 11),
    ]
    producer = FakeProducer()
    ingest, registry = service(FakeConsumer([batch]), producer)

    assert ingest.run_batch() == 3

    assert producer.log == ["begin", "commit"]
    assert [topic for topic, _ in producer.produced] == [
        "t.ingested-events",
        "t.behaviour-events.dead-letter",
        "t.ingested-events",
    ]
    assert sorted(producer.offsets[0]) == [(RAW, 0, 12), (RAW, 3, 6)]
    assert registry.get_sample_value("recops_ingest_events_consumed_total") == 3
    assert (
        registry.get_sample_value(
            "recops_ingest_events_dead_lettered_total",
            {"reason": "missing_event_time"},
        )
        == 1
    )


def test_a_retriable_commit_failure_is_retried_in_the_same_transaction(
    make_event: EventFactory,
) -> None:
    timed_out = KafkaError(KafkaError._TIMED_OUT, "slow", retriable=True)
    producer = FakeProducer(commit_errors=[timed_out])
    ingest, _ = service(FakeConsumer([[raw(make_event(), 1, 0)]]), producer)

    ingest.run_batch()

    assert producer.log == ["begin", "commit failed", "commit"]


def test_an_abortable_failure_aborts_and_rewinds_to_the_batch_start_uncounted(
    make_event: EventFactory,
) -> None:
    abortable = KafkaError(
        KafkaError.NOT_ENOUGH_REPLICAS, "replicas", txn_requires_abort=True
    )
    producer = FakeProducer(commit_errors=[abortable])
    consumer = FakeConsumer([[raw(make_event(), 4, 70), raw(make_event(), 4, 71)]])
    ingest, registry = service(consumer, producer)

    ingest.run_batch()

    assert producer.log == ["begin", "commit failed", "abort"]
    assert consumer.seeks == [(RAW, 4, 70)]
    assert registry.get_sample_value("recops_ingest_transactions_aborted_total") == 1
    assert registry.get_sample_value("recops_ingest_events_consumed_total") == 0


def test_a_fenced_producer_stops_the_service(make_event: EventFactory) -> None:
    fenced = KafkaError(KafkaError._FENCED, "fenced", fatal=True)
    producer = FakeProducer(commit_errors=[fenced])
    ingest, _ = service(FakeConsumer([[raw(make_event(), 0, 0)]]), producer)

    with pytest.raises(TransactionFencedError) as raised:
        ingest.run_batch()

    assert raised.value.retriable is False


def test_an_empty_poll_opens_no_transaction() -> None:
    producer = FakeProducer()
    ingest, _ = service(FakeConsumer([]), producer)

    assert ingest.run_batch() == 0
    assert producer.log == []


def test_run_ends_after_stop_and_closes_the_consumer(
    make_event: EventFactory,
) -> None:
    consumer = FakeConsumer([[raw(make_event(), 0, 0)]])
    producer = FakeProducer()
    ingest, _ = service(consumer, producer)
    producer.commit_transaction = lambda timeout=-1: ingest.stop()  # type: ignore[method-assign]

    ingest.run()

    assert consumer.closed
    assert consumer.topics == [RAW]
    assert producer.log == ["init", "begin"]
