"""How far a consumer group is behind the end of a topic.

The lag of a partition is its high watermark minus the group's committed
offset; a partition the group never committed counts from its first record,
since the group will start there.

Offsets are read through a consumer that carries the watched group's id but
never subscribes, so it never joins the group or moves its offsets. (The
admin client's group offset calls were tried first: on a request timeout,
as on a fresh cluster or while a broker is down, librdkafka 2.16 can abort
the whole process.)
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from typing import Protocol

from confluent_kafka import Consumer, KafkaException, TopicPartition

from eventbus import KafkaSettings
from monitor.errors import LagReadError

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True, kw_only=True)
class ConsumerLag:
    """Records a group has yet to commit on one topic, per partition."""

    group: str
    topic: str
    partitions: Mapping[int, int]

    @property
    def total_events(self) -> int:
        """The lag over all partitions."""
        return sum(self.partitions.values())


class LagSource(Protocol):
    """Tells one consumer group's lag on one topic."""

    group: str
    topic: str

    def read_lag(self) -> ConsumerLag:
        """The current lag; raises :class:`LagReadError` when unknown."""
        ...


class KafkaLagReader:
    """Reads a group's committed offsets and a topic's watermarks from Kafka."""

    def __init__(
        self, consumer: Consumer, *, group: str, topic: str, timeout_seconds: float
    ) -> None:
        self.group = group
        self.topic = topic
        self._consumer = consumer
        self._timeout_seconds = timeout_seconds

    @classmethod
    def connect(
        cls, kafka: KafkaSettings, *, group: str, topic: str, timeout_seconds: float
    ) -> KafkaLagReader:
        """A reader with its own consumer, carrying ``group`` as its group id."""
        consumer = Consumer(kafka.consumer_config(group, logger=logger))
        return cls(consumer, group=group, topic=topic, timeout_seconds=timeout_seconds)

    def close(self) -> None:
        self._consumer.close()

    def read_lag(self) -> ConsumerLag:
        self._consumer.poll(0)  # hands the client's own log lines to ``logger``
        try:
            partitions = self._partitions()
            committed = self._committed(partitions)
            lag = {p: self._lag(p, committed[p]) for p in partitions}
        except KafkaException as exc:
            raise LagReadError(f"lag of {self.group} on {self.topic}: {exc}") from exc
        return ConsumerLag(group=self.group, topic=self.topic, partitions=lag)

    def _partitions(self) -> list[int]:
        metadata = self._consumer.list_topics(self.topic, timeout=self._timeout_seconds)
        described = metadata.topics.get(self.topic)
        if described is None or described.error is not None or not described.partitions:
            reason = described.error if described is not None else "not found"
            raise LagReadError(f"topic {self.topic} cannot be described: {reason}")
        return sorted(described.partitions)

    def _committed(self, partitions: list[int]) -> dict[int, int]:
        answer = self._consumer.committed(
            [TopicPartition(self.topic, p) for p in partitions],
            timeout=self._timeout_seconds,
        )
        committed: dict[int, int] = {}
        for tp in answer:
            if tp.error is not None:
                raise LagReadError(
                    f"committed offset of {self.topic}/{tp.partition}: {tp.error}"
                )
            committed[tp.partition] = tp.offset
        return committed

    def _lag(self, partition: int, committed: int) -> int:
        watermarks = self._consumer.get_watermark_offsets(
            TopicPartition(self.topic, partition),
            timeout=self._timeout_seconds,
            cached=False,
        )
        if watermarks is None:  # older clients answer a timeout this way
            raise LagReadError(f"watermarks of {self.topic}/{partition}: timed out")
        low, high = watermarks
        position = committed if committed >= 0 else low
        return max(0, high - max(position, low))
