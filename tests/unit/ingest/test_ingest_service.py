from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from types import SimpleNamespace
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException, Message, TopicPartition
from prometheus_client import CollectorRegistry

from eventbus import ContentType, KafkaSettings, encode
from eventbus.contracts import BehaviourEvent, UserProfile
from ingest.errors import (
    ConfigurationError,
    ConsumerFencedError,
    ProducerStuckError,
    TransactionFencedError,
)
from ingest.metrics import IngestMetrics
from ingest.profiles import Checkpoint, PartitionProfiles
from ingest.service import IngestService
from ingest.settings import IngestSettings

EventFactory = Callable[..., BehaviourEvent]
RAW = "t.behaviour-events"
PROFILES = "t.user-profiles"
SHOPPER_PARTITION = 3  # where the partitioner puts shopper 17850 of six


class FakeConsumer:
    """Hands out prepared batches; assigns partitions on the first consume."""

    def __init__(
        self,
        batches: list[list[Message]],
        *,
        assignment: Sequence[int] = range(6),
        committed: dict[int, tuple[int, str | None]] | None = None,
        profile_partitions: int = 6,
    ) -> None:
        self.batches = batches
        self.pending_assignment = [TopicPartition(RAW, p) for p in assignment]
        self.committed_offsets = committed or {}
        self.profile_partitions = profile_partitions
        self.seeks: list[tuple[str, int, int]] = []
        self.assigned: list[int] = []
        self.paused: list[int] = []
        self.closed = False
        self.callbacks: dict[str, Any] = {}
        self.positions: dict[int, int] = {}
        self.high_watermarks: dict[int, int] = {}
        self.metadata_failures: list[KafkaError] = []

    def subscribe(self, topics: list[str], **callbacks: Any) -> None:
        self.topics = topics
        self.callbacks = callbacks

    def consume(self, num_messages: int = 1, timeout: float = -1) -> list[Message]:
        if self.pending_assignment:
            partitions, self.pending_assignment = self.pending_assignment, []
            self.callbacks["on_assign"](self, partitions)
        return self.batches.pop(0) if self.batches else []

    def committed(
        self, partitions: list[TopicPartition], timeout: float = -1
    ) -> list[TopicPartition]:
        found = []
        for tp in partitions:
            offset, metadata = self.committed_offsets.get(tp.partition, (-1001, None))
            if metadata is None:
                found.append(TopicPartition(RAW, tp.partition, offset))
            else:
                found.append(
                    TopicPartition(RAW, tp.partition, offset, metadata=metadata)
                )
        return found

    def incremental_assign(self, partitions: list[TopicPartition]) -> None:
        self.assigned.extend(tp.partition for tp in partitions)

    def pause(self, partitions: list[TopicPartition]) -> None:
        self.paused.extend(tp.partition for tp in partitions)

    def position(self, partitions: list[TopicPartition]) -> list[TopicPartition]:
        return [
            TopicPartition(RAW, tp.partition, self.positions.get(tp.partition, 0))
            for tp in partitions
        ]

    def get_watermark_offsets(
        self, partition: TopicPartition, timeout: float = -1, cached: bool = False
    ) -> tuple[int, int]:
        return (0, self.high_watermarks.get(partition.partition, 0))

    def list_topics(self, topic: str | None = None, timeout: float = -1) -> Any:
        if self.metadata_failures:
            raise KafkaException(self.metadata_failures.pop(0))

        def described(count: int) -> SimpleNamespace:
            return SimpleNamespace(error=None, partitions=dict.fromkeys(range(count)))

        return SimpleNamespace(
            topics={RAW: described(6), PROFILES: described(self.profile_partitions)}
        )

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
        self.produced: list[tuple[str, int, bytes | None, bytes]] = []
        self.offsets: list[list[tuple[str, int, int, str]]] = []

    def init_transactions(self, timeout: float = -1) -> None:
        self.log.append("init")

    def begin_transaction(self) -> None:
        self.log.append("begin")

    def produce(self, topic: str, **fields: Any) -> None:
        self.produced.append(
            (topic, fields["partition"], fields["key"], fields["value"])
        )

    def poll(self, timeout: float = -1) -> int:
        return 0

    def send_offsets_to_transaction(
        self, positions: list[TopicPartition], group_metadata: Any, timeout: float = -1
    ) -> None:
        self.offsets.append(
            [(p.topic, p.partition, p.offset, p.metadata) for p in positions]
        )

    def commit_transaction(self, timeout: float = -1) -> None:
        if self.commit_errors:
            self.log.append("commit failed")
            raise KafkaException(self.commit_errors.pop(0))
        self.log.append("commit")

    def abort_transaction(self, timeout: float = -1) -> None:
        self.log.append("abort")

    def topics(self) -> list[str]:
        return [topic for topic, *_ in self.produced]

    def changelog(self) -> list[tuple[int, bytes, bytes]]:
        """The profile records written, as the changelog holds them."""
        return [
            (partition, key or b"", value)
            for topic, partition, key, value in self.produced
            if topic == PROFILES
        ]


class FakeChangelog:
    """Restores partitions from profile records written by an earlier producer."""

    def __init__(self, records: list[tuple[int, bytes, bytes]] | None = None) -> None:
        self.records = records or []
        self.restored: list[list[int]] = []

    def restore(self, partitions: Sequence[int]) -> dict[int, PartitionProfiles]:
        self.restored.append(list(partitions))
        restored = {partition: PartitionProfiles() for partition in partitions}
        for partition, key, value in self.records:
            if partition in restored:
                restored[partition].load(key, value)
        return restored


def settings(**fields: Any) -> IngestSettings:
    return IngestSettings(kafka=KafkaSettings(topic_prefix="t."), **fields)


def raw(
    event: BehaviourEvent, offset: int, partition: int = SHOPPER_PARTITION
) -> Message:
    value, headers = encode(event, ContentType.PROTOBUF)
    return Message(
        topic=RAW, partition=partition, offset=offset, value=value, headers=headers
    )


def started(
    consumer: FakeConsumer,
    producer: FakeProducer,
    changelog: FakeChangelog | None = None,
    **fields: Any,
) -> tuple[IngestService, CollectorRegistry]:
    registry = CollectorRegistry()
    ingest = IngestService(
        settings(**fields),
        IngestMetrics(registry),
        consumer,
        producer,
        changelog or FakeChangelog(),
    )
    ingest.start()
    return ingest, registry


def profile_of(producer: FakeProducer, key: bytes) -> UserProfile:
    (*_, (_, _, value)) = [r for r in producer.changelog() if r[1] == key]
    return UserProfile.FromString(value)


def test_a_batch_its_profiles_and_its_offsets_are_committed_in_one_transaction(
    make_event: EventFactory,
) -> None:
    batch = [
        raw(make_event(event_id="a"), 10),
        raw(make_event(event_id="b", event_time=None), 5),
        raw(make_event(event_id="c"), 11),
    ]
    producer = FakeProducer()
    ingest, registry = started(FakeConsumer([batch]), producer)

    assert ingest.run_batch() == 3

    assert producer.log == ["init", "begin", "commit"]
    assert producer.topics() == [
        "t.ingested-events",
        "t.behaviour-events.dead-letter",
        "t.ingested-events",
        PROFILES,
    ]
    ((topic, partition, offset, metadata),) = producer.offsets[0]
    assert (topic, partition, offset) == (RAW, SHOPPER_PARTITION, 12)
    assert Checkpoint.decode(metadata) == ingest.profiles.checkpoint(partition)
    profile = profile_of(producer, b"17850")
    assert list(profile.recent_event_ids) == ["a", "c"]
    assert dict(profile.event_counts) == {"purchase": 2}
    assert registry.get_sample_value("recops_ingest_events_consumed_total") == 3
    assert (
        registry.get_sample_value(
            "recops_ingest_events_dead_lettered_total",
            {"reason": "missing_event_time"},
        )
        == 1
    )


def test_a_resend_of_an_ingested_event_is_absorbed_and_counted(
    make_event: EventFactory,
) -> None:
    batches = [[raw(make_event(), 0)], [raw(make_event(), 1)]]
    producer = FakeProducer()
    ingest, registry = started(FakeConsumer(batches), producer)

    ingest.run_batch()
    ingest.run_batch()

    assert producer.topics().count("t.ingested-events") == 1
    assert registry.get_sample_value("recops_ingest_events_duplicate_total") == 1
    assert [offsets[0][2] for offsets in producer.offsets] == [1, 2]


def test_a_restarted_instance_absorbs_resends_of_what_its_predecessor_ingested(
    make_event: EventFactory,
) -> None:
    first = FakeProducer()
    before, _ = started(FakeConsumer([[raw(make_event(), 0)]]), first)
    before.run_batch()
    (*_, (_, partition, _, metadata)) = first.offsets[-1]

    second = FakeProducer()
    consumer = FakeConsumer(
        [[raw(make_event(), 0), raw(make_event(event_id="new"), 1)]],
        committed={partition: (1, metadata)},
    )
    after, registry = started(consumer, second, FakeChangelog(first.changelog()))
    after.run_batch()

    assert consumer.paused == []
    assert after.health.ready_problem() is None
    assert second.topics().count("t.ingested-events") == 1
    assert registry.get_sample_value("recops_ingest_events_duplicate_total") == 1
    assert profile_of(second, b"17850").events_total == 2


def test_profiles_that_disagree_with_their_checkpoint_pause_the_partition(
    make_event: EventFactory,
) -> None:
    first = FakeProducer()
    before, _ = started(FakeConsumer([[raw(make_event(), 0)]]), first)
    before.run_batch()
    lost_changelog = FakeChangelog([])
    (*_, (_, partition, _, metadata)) = first.offsets[-1]

    consumer = FakeConsumer([], committed={partition: (1, metadata)})
    after, registry = started(consumer, FakeProducer(), lost_changelog)
    after.run_batch()

    assert consumer.paused == [SHOPPER_PARTITION]
    assert sorted(consumer.assigned) == list(range(6))
    problem = after.health.ready_problem()
    assert problem is not None and f"partition {SHOPPER_PARTITION}" in problem
    assert "committed 1 profiles" in problem and "restored 0" in problem
    assert registry.get_sample_value("recops_ingest_partitions_refused") == 1
    assert registry.get_sample_value("recops_ingest_ready") == 0


def test_profiles_without_any_checkpoint_are_refused(
    make_event: EventFactory,
) -> None:
    first = FakeProducer()
    before, _ = started(FakeConsumer([[raw(make_event(), 0)]]), first)
    before.run_batch()

    consumer = FakeConsumer([])
    after, _ = started(consumer, FakeProducer(), FakeChangelog(first.changelog()))
    after.run_batch()

    assert consumer.paused == [SHOPPER_PARTITION]
    assert "no checkpoint committed" in (after.health.ready_problem() or "")


def test_a_retriable_commit_failure_is_retried_in_the_same_transaction(
    make_event: EventFactory,
) -> None:
    timed_out = KafkaError(KafkaError._TIMED_OUT, "slow", retriable=True)
    producer = FakeProducer(commit_errors=[timed_out])
    ingest, _ = started(FakeConsumer([[raw(make_event(), 0)]]), producer)

    ingest.run_batch()

    assert producer.log == ["init", "begin", "commit failed", "commit"]


def test_an_aborted_batch_is_rewound_uncounted_and_its_profiles_put_back(
    make_event: EventFactory,
) -> None:
    abortable = KafkaError(
        KafkaError.NOT_ENOUGH_REPLICAS, "replicas", txn_requires_abort=True
    )
    batch = [raw(make_event(), 70), raw(make_event(event_id="x"), 71)]
    producer = FakeProducer(commit_errors=[abortable])
    consumer = FakeConsumer([batch, batch])
    ingest, registry = started(consumer, producer)

    ingest.run_batch()
    ingest.run_batch()

    assert producer.log == [
        "init",
        "begin",
        "commit failed",
        "abort",
        "begin",
        "commit",
    ]
    assert consumer.seeks == [(RAW, SHOPPER_PARTITION, 70)]
    assert registry.get_sample_value("recops_ingest_transactions_aborted_total") == 1
    assert registry.get_sample_value("recops_ingest_events_consumed_total") == 2
    assert registry.get_sample_value("recops_ingest_events_duplicate_total") == 0
    assert profile_of(producer, b"17850").events_total == 2


def test_a_fenced_producer_stops_the_service(make_event: EventFactory) -> None:
    fenced = KafkaError(KafkaError._FENCED, "fenced", fatal=True)
    producer = FakeProducer(commit_errors=[fenced])
    ingest, _ = started(FakeConsumer([[raw(make_event(), 0)]]), producer)

    with pytest.raises(TransactionFencedError) as raised:
        ingest.run_batch()

    assert raised.value.retriable is False


def test_an_empty_poll_opens_no_transaction() -> None:
    producer = FakeProducer()
    ingest, _ = started(FakeConsumer([]), producer)

    assert ingest.run_batch() == 0
    assert producer.log == ["init"]


def test_profiles_and_events_topics_of_different_sizes_are_refused() -> None:
    ingest = IngestService(
        settings(),
        IngestMetrics(CollectorRegistry()),
        FakeConsumer([], profile_partitions=3),
        FakeProducer(),
        FakeChangelog(),
    )

    with pytest.raises(ConfigurationError, match="must match"):
        ingest.start()


def test_run_ends_after_stop_and_closes_the_consumer(
    make_event: EventFactory,
) -> None:
    consumer = FakeConsumer([[raw(make_event(), 0)]])
    producer = FakeProducer()
    ingest = IngestService(
        settings(),
        IngestMetrics(CollectorRegistry()),
        consumer,
        producer,
        FakeChangelog(),
    )
    producer.commit_transaction = lambda timeout=-1: ingest.stop()  # type: ignore[method-assign]

    ingest.run()

    assert consumer.closed
    assert consumer.topics == [RAW]
    assert producer.log == ["init", "begin"]
    assert ingest.health.ready_problem() == "ingest is stopping"


def test_a_batch_that_cannot_commit_is_given_up_once_the_grace_period_ends(
    make_event: EventFactory,
) -> None:
    consumer = FakeConsumer([[raw(make_event(), 0)]])
    producer = FakeProducer()
    ingest = IngestService(
        settings(shutdown_grace_seconds=0.2),
        IngestMetrics(CollectorRegistry()),
        consumer,
        producer,
        FakeChangelog(),
    )
    waits: list[float] = []

    def brokers_away(timeout: float = -1) -> None:
        waits.append(timeout)
        ingest.stop() if len(waits) == 1 else time.sleep(timeout)
        raise KafkaException(KafkaError(KafkaError._TIMED_OUT, "away", retriable=True))

    producer.commit_transaction = brokers_away  # type: ignore[method-assign]
    begun = time.monotonic()

    ingest.run()

    assert time.monotonic() - begun < 5
    assert consumer.closed
    assert waits[0] == 30.0 and all(wait <= 0.2 for wait in waits[1:])
    assert ingest.totals.consumed == 0


def test_events_waiting_behind_a_loop_that_commits_nothing_make_it_not_ready() -> None:
    consumer = FakeConsumer([], assignment=[0, 1])
    ingest, registry = started(
        consumer, FakeProducer(), stall_seconds=0.05, stall_lag_events=100
    )
    ingest.run_batch()
    consumer.positions = {0: 40, 1: 10}
    consumer.high_watermarks = {0: 140, 1: 70}

    ingest.watch_lag()
    time.sleep(0.1)

    assert registry.get_sample_value("recops_ingest_consumer_lag_events") == 160
    assert "while 160 events wait" in (ingest.health.ready_problem() or "")


def test_a_loop_with_few_events_waiting_stays_ready_while_idle() -> None:
    consumer = FakeConsumer([], assignment=[0])
    ingest, _ = started(
        consumer, FakeProducer(), stall_seconds=0.05, stall_lag_events=100
    )
    ingest.run_batch()
    consumer.high_watermarks = {0: 100}

    ingest.watch_lag()
    time.sleep(0.1)

    assert ingest.health.ready_problem() is None


def test_metadata_that_times_out_at_start_is_asked_for_again() -> None:
    consumer = FakeConsumer([])
    consumer.metadata_failures = [KafkaError(KafkaError._TIMED_OUT, "no answer")] * 2

    started(consumer, FakeProducer())

    assert consumer.metadata_failures == []
    assert consumer.topics == [RAW]


class StuckProducer(FakeProducer):
    """A producer whose offsets call never returns, as librdkafka's may not."""

    def __init__(self) -> None:
        super().__init__()
        self.released = threading.Event()

    def send_offsets_to_transaction(
        self, positions: list[TopicPartition], group_metadata: Any, timeout: float = -1
    ) -> None:
        self.log.append("send offsets stuck")
        self.released.wait()


def test_a_producer_stuck_in_a_call_is_replaced_and_the_batch_read_again(
    make_event: EventFactory,
) -> None:
    batch = [raw(make_event(), 70)]
    stuck, fresh = StuckProducer(), FakeProducer()
    consumer = FakeConsumer([batch, batch])
    registry = CollectorRegistry()
    ingest = IngestService(
        settings(broker_call_timeout_seconds=0.1, stuck_call_margin_seconds=0.2),
        IngestMetrics(registry),
        consumer,
        stuck,
        FakeChangelog(),
        new_producer=lambda: fresh,
    )
    ingest.start()

    began = time.monotonic()
    ingest.run_batch()
    waited = time.monotonic() - began
    ingest.run_batch()
    stuck.released.set()

    assert waited < 2
    assert stuck.log == ["init", "begin", "send offsets stuck"]
    assert fresh.log == ["init", "begin", "commit"]
    assert consumer.seeks == [(RAW, SHOPPER_PARTITION, 70)]
    assert registry.get_sample_value("recops_ingest_producers_replaced_total") == 1
    assert registry.get_sample_value("recops_ingest_events_consumed_total") == 1
    assert profile_of(fresh, b"17850").events_total == 1


def test_a_stuck_producer_with_no_replacement_stops_the_service(
    make_event: EventFactory,
) -> None:
    stuck = StuckProducer()
    ingest, _ = started(
        FakeConsumer([[raw(make_event(), 70)]]),
        stuck,
        broker_call_timeout_seconds=0.1,
        stuck_call_margin_seconds=0.1,
    )

    with pytest.raises(ProducerStuckError, match="send_offsets_to_transaction"):
        ingest.run_batch()
    stuck.released.set()


def test_a_fatal_consumer_error_stops_the_service() -> None:
    fenced = Message(error=KafkaError(KafkaError._FATAL, "static consumer fenced"))
    ingest, _ = started(FakeConsumer([[fenced]]), FakeProducer())

    with pytest.raises(ConsumerFencedError, match="static consumer fenced"):
        ingest.run_batch()
