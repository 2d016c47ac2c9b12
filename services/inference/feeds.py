"""Background readers that replay a topic from its start and follow it.

A :class:`TopicTail` owns one consumer in one thread and hands each batch of
records to a :class:`RecordHandler`. It assigns every partition at its first
offset instead of joining a consumer group, so each process builds its own
view of the topic and commits nothing.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Protocol

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, TopicPartition

from eventbus import KafkaSettings

logger = logging.getLogger(__name__)

HeaderValue = bytes | str | None
Headers = Sequence[tuple[str, HeaderValue]] | Mapping[str, HeaderValue]


class Record(Protocol):
    """The parts of a consumed Kafka record the handlers read."""

    def value(self) -> bytes | None: ...

    def headers(self) -> Headers | None: ...

    def partition(self) -> int | None: ...

    def offset(self) -> int | None: ...


class RecordHandler(Protocol):
    """Applies a batch of records, in topic order, to some in-memory view."""

    def handle(self, records: Sequence[Record]) -> None: ...


class RecordSource(Protocol):
    """Where a tail reads records from: a Kafka consumer, or a test's list."""

    def consume(self, max_records: int, timeout_seconds: float) -> list[Record]: ...

    def close(self) -> None: ...


def header_list(headers: Headers | None) -> list[tuple[str, HeaderValue]]:
    """A record's headers as ``(key, value)`` pairs, whichever form they came in."""
    if headers is None:
        return []
    if isinstance(headers, Mapping):
        return list(headers.items())
    return list(headers)


def header_value(headers: Headers | None, name: str) -> str | None:
    """The text of the first header called ``name``, if any."""
    pairs = headers.items() if isinstance(headers, Mapping) else headers or ()
    for key, raw in pairs:
        if key.lower() == name and raw is not None:
            return raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    return None


class KafkaRecordSource:
    """Every partition of one topic, read from its first offset."""

    def __init__(self, settings: KafkaSettings, topic: str) -> None:
        group_id = f"recops-inference-view-{uuid.uuid4().hex[:12]}"
        self._consumer = Consumer(settings.consumer_config(group_id))
        self._topic = topic
        self._assigned = False
        self._waiting_reported = False

    def consume(self, max_records: int, timeout_seconds: float) -> list[Record]:
        if not self._assigned:
            self._assigned = self._assign_all_partitions(timeout_seconds)
            if not self._assigned:
                time.sleep(timeout_seconds)
                return []
        records = self._consumer.consume(max_records, timeout_seconds)
        good: list[Record] = []
        for record in records:
            if record.error():
                logger.warning(
                    "consumer error: %s", record.error(), extra={"topic": self._topic}
                )
            else:
                good.append(record)
        return good

    def close(self) -> None:
        self._consumer.close()

    def _assign_all_partitions(self, timeout_seconds: float) -> bool:
        try:
            metadata = self._consumer.list_topics(self._topic, timeout=timeout_seconds)
        except KafkaException as exc:
            self._report_waiting(f"topic metadata unavailable: {exc}")
            return False
        topic = metadata.topics.get(self._topic)
        if topic is None or topic.error is not None or not topic.partitions:
            self._report_waiting("topic not found")
            return False
        self._consumer.assign(
            [TopicPartition(self._topic, p, OFFSET_BEGINNING) for p in topic.partitions]
        )
        self._waiting_reported = False
        logger.info(
            "reading from the first offset",
            extra={"topic": self._topic, "partitions": len(topic.partitions)},
        )
        return True

    def _report_waiting(self, why: str) -> None:
        level = logging.DEBUG if self._waiting_reported else logging.WARNING
        logger.log(level, "waiting for topic: %s", why, extra={"topic": self._topic})
        self._waiting_reported = True


class TopicTail:
    """Feeds one topic's records to a handler from a background thread."""

    def __init__(
        self,
        *,
        name: str,
        source_factory: Callable[[], RecordSource],
        handler: RecordHandler,
        poll_timeout_seconds: float = 0.5,
        batch_size: int = 500,
    ) -> None:
        self.name = name
        self._source_factory = source_factory
        self._handler = handler
        self._poll_timeout_seconds = poll_timeout_seconds
        self._batch_size = batch_size
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        """Begin reading in the background."""
        self._thread.start()

    def stop(self, timeout_seconds: float = 10.0) -> None:
        """Ask the reader to finish its batch and close; wait for it."""
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join(timeout_seconds)

    def _run(self) -> None:
        source = self._source_factory()
        try:
            while not self._stopping.is_set():
                records = source.consume(self._batch_size, self._poll_timeout_seconds)
                if records:
                    self._hand_over(records)
        finally:
            source.close()

    def _hand_over(self, records: Sequence[Record]) -> None:
        try:
            self._handler.handle(records)
        except Exception:  # a view must keep following the topic whatever happens
            last = records[-1]
            logger.exception(
                "handler failed on a batch",
                extra={
                    "tail": self.name,
                    "partition": last.partition(),
                    "offset": last.offset(),
                },
            )
