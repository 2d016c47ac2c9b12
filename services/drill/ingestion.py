"""Did ingest write every acknowledged probe event? Count them on INGESTED_EVENTS."""

from __future__ import annotations

import dataclasses
import logging
import time
import uuid
from collections import Counter
from collections.abc import Callable, Set
from typing import Protocol

from confluent_kafka import Consumer, KafkaException, Message, TopicPartition

from drill.errors import PreconditionError
from eventbus import DecodeError, KafkaSettings, decode
from eventbus.contracts import BehaviourEvent

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True, kw_only=True)
class IngestionCount:
    """A drill's probe events as ingest wrote them."""

    ingested_ids: frozenset[str]
    duplicates: int
    waited_seconds: float

    def lost(self, acknowledged: Set[str]) -> set[str]:
        """Acknowledged events ingest never wrote."""
        return set(acknowledged - self.ingested_ids)


class IngestionCounter(Protocol):
    """Counts one drill's events on the ingested topic."""

    def mark_start(self) -> None:
        """Remember where the topic ends now; count only what comes after."""
        ...

    def count(self, expected: Set[str], *, timeout_seconds: float) -> IngestionCount:
        """Read until every expected event is seen or the time is up."""
        ...


class KafkaIngestionCounter:
    """Reads INGESTED_EVENTS as a ``read_committed`` consumer outside any group.

    Records are matched by source, so events from everything else on the
    topic are skipped. After the last expected event it keeps reading a
    moment longer, to catch duplicates written just behind it. Each step opens
    its own consumer and closes it, so an aborted drill leaves none behind.
    """

    def __init__(
        self,
        new_consumer: Callable[[], Consumer],
        *,
        topic: str,
        source: str,
        timeout_seconds: float,
        settle_seconds: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._new_consumer = new_consumer
        self._topic = topic
        self._source = source
        self._timeout_seconds = timeout_seconds
        self._settle_seconds = settle_seconds
        self._clock = clock
        self._start: list[TopicPartition] = []

    @classmethod
    def connect(
        cls, kafka: KafkaSettings, *, topic: str, source: str, timeout_seconds: float
    ) -> KafkaIngestionCounter:
        group = f"recops-drill-verify-{uuid.uuid4().hex[:12]}"

        def new_consumer() -> Consumer:
            return Consumer(kafka.consumer_config(group, logger=logger))

        return cls(
            new_consumer, topic=topic, source=source, timeout_seconds=timeout_seconds
        )

    def mark_start(self) -> None:
        consumer = self._new_consumer()
        try:
            self._start = self._ends(consumer)
        except (KafkaException, KeyError) as exc:
            raise PreconditionError(f"end of {self._topic} unknown: {exc}") from exc
        finally:
            consumer.close()
        if not self._start:
            raise PreconditionError(f"{self._topic} has no partitions")

    def count(self, expected: Set[str], *, timeout_seconds: float) -> IngestionCount:
        started = self._clock()
        copies: Counter[str] = Counter()
        consumer = self._new_consumer()
        consumer.assign(self._start)

        def all_seen() -> bool:
            return expected <= copies.keys()

        try:
            self._read_until(consumer, all_seen, copies, started + timeout_seconds)
            self._read_quiet_period(consumer, copies)
        finally:
            consumer.close()
        return IngestionCount(
            ingested_ids=frozenset(copies),
            duplicates=sum(copies.values()) - len(copies),
            waited_seconds=self._clock() - started,
        )

    def _ends(self, consumer: Consumer) -> list[TopicPartition]:
        metadata = consumer.list_topics(self._topic, timeout=self._timeout_seconds)
        ends = []
        for partition in sorted(metadata.topics[self._topic].partitions):
            where = TopicPartition(self._topic, partition)
            _, high = consumer.get_watermark_offsets(
                where, timeout=self._timeout_seconds
            )
            ends.append(TopicPartition(self._topic, partition, high))
        return ends

    def _read_until(
        self,
        consumer: Consumer,
        done: Callable[[], bool],
        copies: Counter[str],
        deadline: float,
    ) -> None:
        while not done() and self._clock() < deadline:
            self._read_batch(consumer, copies)

    def _read_quiet_period(self, consumer: Consumer, copies: Counter[str]) -> None:
        quiet_until = self._clock() + self._settle_seconds
        while self._clock() < quiet_until:
            if self._read_batch(consumer, copies):
                quiet_until = self._clock() + self._settle_seconds

    def _read_batch(self, consumer: Consumer, copies: Counter[str]) -> int:
        """Read what is there; return how many of this drill's events came."""
        matched = 0
        for record in consumer.consume(500, timeout=0.2):
            if record.error() is not None:
                continue
            try:
                event = decode(BehaviourEvent, record.value(), _header_pairs(record))
            except DecodeError:
                continue
            if event.source == self._source:
                copies[event.event_id] += 1
                matched += 1
        return matched


def _header_pairs(record: Message) -> list[tuple[str, bytes | str | None]]:
    headers = record.headers()
    if isinstance(headers, dict):
        return list(headers.items())
    return list(headers or [])
