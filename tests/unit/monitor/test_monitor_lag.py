from types import SimpleNamespace

import pytest
from confluent_kafka import KafkaError, KafkaException, TopicPartition

from monitor.errors import LagReadError
from monitor.lag import ConsumerLag, KafkaLagReader

GROUP = "recops-ingest"
TOPIC = "t.behaviour-events"


class FakeConsumer:
    """Answers the calls the lag reader makes from fixed offsets."""

    def __init__(
        self, *, committed: dict[int, int], watermarks: dict[int, tuple[int, int]]
    ) -> None:
        self.committed_offsets = committed
        self.watermarks = watermarks
        self.unreachable = False

    def poll(self, timeout: float) -> None:
        return None

    def list_topics(self, topic: str, timeout: float) -> SimpleNamespace:
        partitions = dict.fromkeys(self.watermarks)
        described = SimpleNamespace(error=None, partitions=partitions)
        return SimpleNamespace(topics={topic: described})

    def committed(
        self, partitions: list[TopicPartition], timeout: float
    ) -> list[TopicPartition]:
        if self.unreachable:
            raise KafkaException(KafkaError(KafkaError._TIMED_OUT))
        return [
            TopicPartition(
                tp.topic, tp.partition, self.committed_offsets.get(tp.partition, -1001)
            )
            for tp in partitions
        ]

    def get_watermark_offsets(
        self, partition: TopicPartition, timeout: float, cached: bool
    ) -> tuple[int, int]:
        return self.watermarks[partition.partition]


def reader_over(consumer: FakeConsumer) -> KafkaLagReader:
    return KafkaLagReader(consumer, group=GROUP, topic=TOPIC, timeout_seconds=1)


def test_lag_is_the_high_watermark_minus_the_committed_offset_per_partition() -> None:
    consumer = FakeConsumer(
        committed={0: 10, 1: 50}, watermarks={0: (0, 110), 1: (0, 50)}
    )

    lag = reader_over(consumer).read_lag()

    assert lag == ConsumerLag(group=GROUP, topic=TOPIC, partitions={0: 100, 1: 0})
    assert lag.total_events == 100


def test_a_partition_the_group_never_committed_counts_from_its_first_record() -> None:
    consumer = FakeConsumer(committed={0: 10}, watermarks={0: (0, 10), 1: (40, 300)})

    lag = reader_over(consumer).read_lag()

    assert lag.partitions == {0: 0, 1: 260}


def test_a_committed_offset_before_the_first_retained_record_counts_from_it() -> None:
    consumer = FakeConsumer(committed={0: 5}, watermarks={0: (100, 150)})

    assert reader_over(consumer).read_lag().partitions == {0: 50}


def test_an_unanswered_offset_request_is_a_lag_read_error_not_zero_lag() -> None:
    consumer = FakeConsumer(committed={0: 10}, watermarks={0: (0, 10)})
    consumer.unreachable = True

    with pytest.raises(LagReadError):
        reader_over(consumer).read_lag()
