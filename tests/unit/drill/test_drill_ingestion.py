from types import SimpleNamespace

from confluent_kafka import TopicPartition

from drill.ingestion import KafkaIngestionCounter
from eventbus import encode
from eventbus.contracts import BehaviourEvent

TOPIC = "t.ingested-events"


class Record:
    def __init__(self, event_id: str, source: str) -> None:
        event = BehaviourEvent(event_id=event_id, source=source, user_id="17850")
        self._value, self._headers = encode(event)

    def error(self) -> None:
        return None

    def value(self) -> bytes:
        return self._value

    def headers(self) -> list[tuple[str, bytes]]:
        return self._headers


class IngestedTopic:
    """A consumer over a fixed list of batches, one batch per consume call."""

    def __init__(self, batches: list[list[Record]]) -> None:
        self.batches = batches
        self.assigned: list[TopicPartition] = []
        self.closed = 0

    def list_topics(self, topic: str, timeout: float) -> SimpleNamespace:
        described = SimpleNamespace(partitions={0: None, 1: None})
        return SimpleNamespace(topics={topic: described})

    def get_watermark_offsets(
        self, partition: TopicPartition, timeout: float
    ) -> tuple[int, int]:
        return 0, 100 + partition.partition

    def assign(self, partitions: list[TopicPartition]) -> None:
        self.assigned = partitions

    def consume(self, count: int, timeout: float) -> list[Record]:
        return self.batches.pop(0) if self.batches else []

    def close(self) -> None:
        self.closed += 1


def counter_over(topic: IngestedTopic) -> KafkaIngestionCounter:
    return KafkaIngestionCounter(
        lambda: topic,
        topic=TOPIC,
        source="drill:d-1",
        timeout_seconds=1,
        settle_seconds=0.3,
    )


def test_only_this_drills_events_are_counted_with_their_duplicates() -> None:
    topic = IngestedTopic(
        [
            [Record("d-1-000000", "drill:d-1"), Record("536365-1", "replay")],
            [Record("d-1-000001", "drill:d-1"), Record("d-0-000001", "drill:d-0")],
            [Record("d-1-000001", "drill:d-1")],
        ]
    )
    counter = counter_over(topic)

    counter.mark_start()
    count = counter.count({"d-1-000000", "d-1-000001"}, timeout_seconds=5)

    assert count.ingested_ids == {"d-1-000000", "d-1-000001"}
    assert count.duplicates == 1
    assert count.lost({"d-1-000000", "d-1-000001", "d-1-000002"}) == {"d-1-000002"}


def test_counting_starts_where_the_topic_ended_before_the_drill() -> None:
    topic = IngestedTopic([])
    counter = counter_over(topic)

    counter.mark_start()
    counter.count(set(), timeout_seconds=0)

    assert [(tp.partition, tp.offset) for tp in topic.assigned] == [(0, 100), (1, 101)]
    assert topic.closed == 2


def test_an_event_never_ingested_is_given_up_on_after_the_timeout() -> None:
    counter = counter_over(IngestedTopic([[Record("d-1-000000", "drill:d-1")]]))

    counter.mark_start()
    count = counter.count({"d-1-000000", "d-1-000001"}, timeout_seconds=0.5)

    assert count.lost({"d-1-000000", "d-1-000001"}) == {"d-1-000001"}
    assert 0.5 <= count.waited_seconds < 3
