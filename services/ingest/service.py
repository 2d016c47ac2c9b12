"""The ingest loop: consume raw events, triage them, write the results.

Each batch is one Kafka transaction holding the ingested events, the dead
letters and the consumer offsets of the batch, so a crash anywhere leaves
either all of a batch's outputs and its offsets or none of them.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from confluent_kafka import (
    Consumer,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
)

from eventbus.topics import Topic
from ingest.errors import BrokerError, IngestError, TransactionFencedError
from ingest.metrics import IngestMetrics
from ingest.settings import IngestSettings
from ingest.triage import (
    BatchTally,
    OutgoingRecord,
    RecordHeaders,
    Triage,
    batch_offsets,
    batch_starts,
)
from ingest.validation import EventTimeWindow

logger = logging.getLogger(__name__)

TRANSACTION_TIMEOUT_MS = 60_000
CALL_TIMEOUT_SECONDS = 30.0
CLOSE_TIMEOUT_SECONDS = 10.0


RebalanceCallback = Callable[[Any, list[TopicPartition]], None]


class BatchConsumer(Protocol):
    """The consumer calls the ingest loop makes."""

    def subscribe(
        self,
        topics: list[str],
        on_assign: RebalanceCallback | None = ...,
        on_revoke: RebalanceCallback | None = ...,
    ) -> None: ...
    def consume(
        self, num_messages: int = ..., timeout: float = ...
    ) -> list[Message]: ...
    def consumer_group_metadata(self) -> object: ...
    def seek(self, partition: TopicPartition) -> None: ...
    def close(self) -> None: ...


class TransactionalProducer(Protocol):
    """The transactional producer calls the ingest loop makes."""

    def init_transactions(self, timeout: float) -> None: ...
    def begin_transaction(self) -> None: ...
    def produce(
        self,
        topic: str,
        *,
        value: bytes,
        key: bytes | None,
        headers: RecordHeaders,
    ) -> None: ...
    def poll(self, timeout: float) -> int: ...
    def send_offsets_to_transaction(
        self, positions: list[TopicPartition], group_metadata: object, timeout: float
    ) -> None: ...
    def commit_transaction(self, timeout: float) -> None: ...
    def abort_transaction(self, timeout: float) -> None: ...


class IngestService:
    """Moves behaviour events from the raw topic to the ingested topic.

    Call :meth:`run` in one thread; :meth:`stop` from any other, or from a
    signal handler, ends it after the batch in flight is committed.
    """

    def __init__(
        self,
        settings: IngestSettings,
        metrics: IngestMetrics,
        consumer: BatchConsumer,
        producer: TransactionalProducer,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self.raw_topic = settings.kafka.topic(Topic.BEHAVIOUR_EVENTS)
        self.totals = BatchTally()
        self._consumer = consumer
        self._producer = producer
        self._triage = Triage(
            ingested_topic=settings.kafka.topic(Topic.INGESTED_EVENTS),
            dead_letter_topic=settings.kafka.topic(Topic.DEAD_LETTER),
            window=EventTimeWindow.from_settings(settings),
            clock=clock,
        )
        self._stopping = threading.Event()

    @classmethod
    def connect(cls, settings: IngestSettings, metrics: IngestMetrics) -> IngestService:
        """A service wired to the cluster the settings name."""
        kafka = settings.kafka
        consumer = Consumer(
            kafka.consumer_config(
                settings.group_id,
                **{"group.instance.id": settings.instance_id, "logger": logger},
            )
        )
        producer = Producer(
            kafka.producer_config(
                **{
                    "transactional.id": settings.instance_id,
                    "transaction.timeout.ms": TRANSACTION_TIMEOUT_MS,
                    "message.timeout.ms": TRANSACTION_TIMEOUT_MS,
                    "linger.ms": 5,
                    "logger": logger,
                }
            )
        )
        return cls(settings, metrics, consumer, producer)

    def stop(self) -> None:
        """Ask the loop to finish its batch and return."""
        self._stopping.set()

    def run(self) -> None:
        """Consume and ingest until stopped; close the consumer on the way out."""
        self._init_transactions()
        self._consumer.subscribe(
            [self.raw_topic], on_assign=_log_assignment, on_revoke=_log_revocation
        )
        logger.info(
            "ingest started",
            extra={"topic": self.raw_topic, "group": self.settings.group_id},
        )
        try:
            while not self._stopping.is_set():
                self.run_batch()
        finally:
            self._consumer.close()
            logger.info("ingest stopped", extra={"consumed": self.totals.consumed})

    def run_batch(self) -> int:
        """Ingest one batch; return how many records it held."""
        messages = self._consumer.consume(
            num_messages=self.settings.batch_max_events,
            timeout=self.settings.batch_wait_seconds,
        )
        records = [message for message in messages if _usable(message)]
        if not records:
            return 0

        started = time.perf_counter()
        outgoing, tally = self._triage.sort(records)
        committed = self._write(records, outgoing)

        if committed:
            self._record(tally, time.perf_counter() - started)
        return len(records)

    def _init_transactions(self) -> None:
        try:
            self._producer.init_transactions(CALL_TIMEOUT_SECONDS)
        except KafkaException as exc:
            error = exc.args[0]
            raise BrokerError(f"init_transactions failed: {error.str()}") from exc

    def _write(
        self, records: Sequence[Message], outgoing: list[OutgoingRecord]
    ) -> bool:
        """Write one batch as a transaction; False when it was aborted."""
        try:
            self._producer.begin_transaction()
            for record in outgoing:
                self._produce(record)
            self._retrying(self._send_offsets, records)
            self._retrying(self._commit)
            return True
        except KafkaException as exc:
            error = exc.args[0]
            if error.fatal():
                raise TransactionFencedError(error.str()) from exc
            if not error.txn_requires_abort():
                raise IngestError(f"transaction failed: {error.str()}") from exc
            logger.warning("aborting transaction: %s", error.str())
            self._abort(records)
            return False

    def _produce(self, record: OutgoingRecord) -> None:
        while True:
            try:
                self._producer.produce(
                    topic=record.topic,
                    value=record.value,
                    key=record.key,
                    headers=record.headers,
                )
                return
            except BufferError:
                self._producer.poll(0.05)

    def _send_offsets(self, records: Sequence[Message]) -> None:
        positions = [
            TopicPartition(topic, partition, offset)
            for (topic, partition), offset in batch_offsets(records).items()
        ]
        self._producer.send_offsets_to_transaction(
            positions, self._consumer.consumer_group_metadata(), CALL_TIMEOUT_SECONDS
        )

    def _commit(self) -> None:
        self._producer.commit_transaction(CALL_TIMEOUT_SECONDS)

    def _retrying(self, call: Callable[..., None], *args: Any) -> None:
        """Repeat a transaction call while the broker says it may succeed."""
        while True:
            try:
                call(*args)
                return
            except KafkaException as exc:
                error = exc.args[0]
                if not error.retriable() or error.txn_requires_abort():
                    raise
                logger.warning("retrying %s: %s", call.__name__, error.str())

    def _abort(self, records: Sequence[Message]) -> None:
        """Abort the open transaction and rewind to the batch's first records."""
        self._retrying(self._producer.abort_transaction, CALL_TIMEOUT_SECONDS)
        self.metrics.transactions_aborted.inc()
        for (topic, partition), offset in batch_starts(records).items():
            try:
                self._consumer.seek(TopicPartition(topic, partition, offset))
            except KafkaException as exc:
                # The partition moved to another member; it resumes from the
                # committed offset, which is this batch's start.
                logger.info(
                    "not rewinding %s[%d]: %s",
                    topic,
                    partition,
                    exc.args[0].str(),
                    extra={"topic": topic, "partition": partition},
                )

    def _record(self, tally: BatchTally, seconds: float) -> None:
        self.totals.add(tally)
        metrics = self.metrics
        metrics.events_consumed.inc(tally.consumed)
        for kind, count in tally.accepted.items():
            metrics.events_accepted.labels(item_kind=kind.value).inc(count)
        for reason, count in tally.dead_lettered.items():
            metrics.events_dead_lettered.labels(reason=reason).inc(count)
        for oddity, count in tally.classified.items():
            metrics.events_classified.labels(kind=oddity.value).inc(count)
        metrics.batch_seconds.observe(seconds)
        metrics.batch_events.observe(tally.consumed)
        logger.debug(
            "batch committed",
            extra={"events": tally.consumed, "seconds": round(seconds, 4)},
        )


def _usable(message: Message) -> bool:
    error = message.error()
    if error is None:
        return True
    if error.fatal():
        raise IngestError(f"consumer failed: {error.str()}")
    logger.warning("consumer error: %s", error.str())
    return False


def _log_assignment(_: object, partitions: list[TopicPartition]) -> None:
    logger.info("partitions assigned: %s", [p.partition for p in partitions])


def _log_revocation(_: object, partitions: list[TopicPartition]) -> None:
    logger.info("partitions revoked: %s", [p.partition for p in partitions])
