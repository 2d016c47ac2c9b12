"""The ingest loop: consume raw events, triage them, write the results.

Each batch is one Kafka transaction holding the ingested events, the dead
letters, the shopper profiles the batch changed and the consumer offsets of
the batch, so a crash anywhere leaves either all of a batch's outputs and its
offsets or none of them. A partition taken over is first restored from the
profiles topic and checked against the checkpoint committed beside its
offset; one that disagrees is paused and keeps the service from being ready.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from confluent_kafka import (
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
)

from eventbus.topics import DEAD_LETTER_MAX_BYTES, Topic
from ingest.changelog import ChangelogReader, KafkaChangelogReader
from ingest.errors import (
    BrokerError,
    ConfigurationError,
    ConsumerFencedError,
    IngestError,
    ProducerStuckError,
    ShutdownDeadlineError,
    TransactionFencedError,
)
from ingest.health import IngestHealth
from ingest.metrics import IngestMetrics
from ingest.profiles import Checkpoint, PartitionProfiles, ProfileStore
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
LAG_EVERY_SECONDS = 1.0
PROFILE_HEADERS: RecordHeaders = [("content-type", b"application/x-protobuf")]


RebalanceCallback = Callable[[Any, list[TopicPartition]], None]


class BatchConsumer(Protocol):
    """The consumer calls the ingest loop makes."""

    def subscribe(
        self,
        topics: list[str],
        on_assign: RebalanceCallback | None = ...,
        on_revoke: RebalanceCallback | None = ...,
        on_lost: RebalanceCallback | None = ...,
    ) -> None: ...
    def consume(
        self, num_messages: int = ..., timeout: float = ...
    ) -> list[Message]: ...
    def committed(
        self, partitions: list[TopicPartition], timeout: float = ...
    ) -> list[TopicPartition]: ...
    def incremental_assign(self, partitions: list[TopicPartition]) -> None: ...
    def pause(self, partitions: list[TopicPartition]) -> None: ...
    def position(self, partitions: list[TopicPartition]) -> list[TopicPartition]: ...
    def get_watermark_offsets(
        self, partition: TopicPartition, timeout: float = ..., cached: bool = ...
    ) -> tuple[int, int] | None: ...
    def list_topics(self, topic: str | None = ..., timeout: float = ...) -> Any: ...
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
        partition: int = ...,
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
    signal handler, ends it after the batch in flight is committed, or gives
    that batch up once the shutdown grace period has passed: it was not
    committed, so it is consumed again after a restart.
    """

    def __init__(
        self,
        settings: IngestSettings,
        metrics: IngestMetrics,
        consumer: BatchConsumer,
        producer: TransactionalProducer,
        changelog: ChangelogReader,
        *,
        new_producer: Callable[[], TransactionalProducer] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self.raw_topic = settings.kafka.topic(Topic.BEHAVIOUR_EVENTS)
        self.profiles_topic = settings.kafka.topic(Topic.USER_PROFILES)
        self.totals = BatchTally()
        self.profiles = ProfileStore(settings.profile_limits())
        self.health = IngestHealth(settings, metrics)
        self._consumer = consumer
        self._producer = producer
        self._changelog = changelog
        self._new_producer = new_producer
        self._clock = clock
        self._triage: Triage | None = None
        self._stopping = threading.Event()
        self._stop_deadline = float("inf")
        self._loop_ended = threading.Event()

    @classmethod
    def connect(cls, settings: IngestSettings, metrics: IngestMetrics) -> IngestService:
        """A service wired to the cluster the settings name."""
        kafka = settings.kafka
        consumer = Consumer(
            kafka.consumer_config(
                settings.group_id,
                **{
                    "group.instance.id": settings.instance_id,
                    "partition.assignment.strategy": "cooperative-sticky",
                    "logger": logger,
                },
            )
        )
        producer_config = kafka.producer_config(
            **{
                "transactional.id": settings.instance_id,
                "transaction.timeout.ms": TRANSACTION_TIMEOUT_MS,
                "message.timeout.ms": TRANSACTION_TIMEOUT_MS,
                "message.max.bytes": DEAD_LETTER_MAX_BYTES,
                "linger.ms": 5,
                "logger": logger,
            }
        )
        changelog = KafkaChangelogReader(
            kafka,
            kafka.topic(Topic.USER_PROFILES),
            timeout_seconds=settings.restore_timeout_seconds,
        )
        return cls(
            settings,
            metrics,
            consumer,
            Producer(producer_config),
            changelog,
            new_producer=lambda: Producer(producer_config),
        )

    def stop(self) -> None:
        """Ask the loop to finish its batch within the grace period and return."""
        self._stop_deadline = time.monotonic() + self.settings.shutdown_grace_seconds
        self._stopping.set()

    def start(self) -> None:
        """Claim the transactional id, check the topics and join the group."""
        self._init_transactions()
        self._triage = self._make_triage()
        self._consumer.subscribe(
            [self.raw_topic],
            on_assign=self._on_assign,
            on_revoke=self._on_revoke,
            on_lost=self._on_revoke,
        )
        logger.info(
            "ingest started",
            extra={"topic": self.raw_topic, "group": self.settings.group_id},
        )

    def run(self) -> None:
        """Start, consume and ingest until stopped, and close the consumer.

        Lag is measured in a thread of its own, so that a loop stuck in a
        broker call still shows the events piling up behind it.
        """
        self.start()
        lag_watcher = threading.Thread(
            target=self._watch_lag_until_the_loop_ends, name="ingest-lag", daemon=True
        )
        lag_watcher.start()
        try:
            while not self._stopping.is_set():
                self.run_batch()
        except ShutdownDeadlineError as exc:
            logger.warning("batch given up at shutdown: %s", exc)
        finally:
            self.health.stopped()
            self._loop_ended.set()
            lag_watcher.join()
            self._consumer.close()
            logger.info("ingest stopped", extra={"consumed": self.totals.consumed})

    def run_batch(self) -> int:
        """Ingest one batch; return how many records it held."""
        self.health.beat()
        messages = self._consumer.consume(
            num_messages=self.settings.batch_max_events,
            timeout=self.settings.batch_wait_seconds,
        )
        records = [message for message in messages if _usable(message)]
        if not records:
            return 0

        if self._triage is None:
            raise IngestError("run_batch called before start")
        started = time.perf_counter()
        outgoing, tally = self._triage.sort(records, self.profiles.absorb)
        committed = self._write(records, outgoing)

        if committed:
            self._record(tally, time.perf_counter() - started)
        return len(records)

    def _make_triage(self) -> Triage:
        kafka = self.settings.kafka
        return Triage(
            raw_topic=self.raw_topic,
            raw_partitions=self._partition_count(),
            ingested_topic=kafka.topic(Topic.INGESTED_EVENTS),
            dead_letter_topic=kafka.topic(Topic.DEAD_LETTER),
            window=EventTimeWindow.from_settings(self.settings),
            max_event_bytes=self.settings.max_event_bytes,
            clock=self._clock,
        )

    def _partition_count(self) -> int:
        """The raw topic's partitions, which the profiles topic must match."""
        metadata = self._topic_metadata()
        counts = {}
        for name in (self.raw_topic, self.profiles_topic):
            topic = metadata.topics.get(name)
            if topic is None or topic.error is not None or not topic.partitions:
                raise ConfigurationError(f"topic {name} does not exist")
            counts[name] = len(topic.partitions)
        if counts[self.raw_topic] != counts[self.profiles_topic]:
            raise ConfigurationError(
                f"{self.profiles_topic} has {counts[self.profiles_topic]} partitions"
                f" and {self.raw_topic} {counts[self.raw_topic]}: they must match"
            )
        return counts[self.raw_topic]

    def _topic_metadata(self) -> Any:
        """The cluster's topics, asked again while no broker answers in time."""
        deadline = time.monotonic() + self.settings.restore_timeout_seconds
        while True:
            try:
                return self._consumer.list_topics(
                    timeout=self.settings.broker_call_timeout_seconds
                )
            except KafkaException as exc:
                error = exc.args[0]
                if error.fatal() or time.monotonic() > deadline:
                    raise BrokerError(f"no topic metadata: {error.str()}") from exc
                logger.warning("asking for topic metadata again: %s", error.str())

    def _on_assign(self, consumer: Any, partitions: list[TopicPartition]) -> None:
        """Restore the new partitions' profiles and check them before consuming."""
        numbers = [tp.partition for tp in partitions]
        logger.info("partitions assigned: %s", numbers)
        started = time.perf_counter()
        committed = {
            tp.partition: tp
            for tp in self._consumer.committed(
                partitions, timeout=self.settings.broker_call_timeout_seconds
            )
        }
        restored = self._changelog.restore(numbers)
        self.metrics.restore_seconds.observe(time.perf_counter() - started)
        refused = []
        for tp in partitions:
            profiles = restored[tp.partition]
            problem = _disagreement(committed.get(tp.partition), profiles)
            if problem is None:
                self.profiles.adopt(tp.partition, profiles)
                continue
            logger.error(
                "profiles of partition %d disagree with its checkpoint: %s",
                tp.partition,
                problem,
                extra={"topic": self.raw_topic, "partition": tp.partition},
            )
            refused.append(tp)
            self.health.refuse_partition(tp.partition, problem)
        self._consumer.incremental_assign(partitions)
        if refused:
            self._consumer.pause(refused)
        self.health.assigned(numbers)

    def _on_revoke(self, consumer: Any, partitions: list[TopicPartition]) -> None:
        numbers = [tp.partition for tp in partitions]
        logger.info("partitions revoked: %s", numbers)
        for partition in numbers:
            self.profiles.release(partition)
        self.health.revoked(numbers)

    def _init_transactions(self) -> None:
        try:
            self._bounded(self._producer.init_transactions)
        except KafkaException as exc:
            error = exc.args[0]
            raise BrokerError(f"init_transactions failed: {error.str()}") from exc

    def _write(
        self, records: Sequence[Message], outgoing: list[OutgoingRecord]
    ) -> bool:
        """Write one batch as a transaction; False when it must be read again."""
        try:
            self._transact(records, outgoing)
        except KafkaException as exc:
            self._give_up_transaction(exc.args[0])
        except ProducerStuckError as exc:
            self._replace_producer(exc)
        except ShutdownDeadlineError:
            self.profiles.rollback()
            raise
        else:
            self.profiles.commit()
            return True
        self.profiles.rollback()
        self._rewind(records)
        return False

    def _transact(
        self, records: Sequence[Message], outgoing: list[OutgoingRecord]
    ) -> None:
        self._producer.begin_transaction()
        for record in outgoing:
            self._produce(record)
        for change in self.profiles.changes():
            self._produce(
                OutgoingRecord(
                    topic=self.profiles_topic,
                    key=change.key,
                    value=change.value,
                    headers=PROFILE_HEADERS,
                    partition=change.partition,
                )
            )
        self._retrying(self._send_offsets, records)
        self._retrying(self._commit)

    def _give_up_transaction(self, error: KafkaError) -> None:
        """Abort the open transaction after an error that allows it."""
        if error.fatal():
            raise TransactionFencedError(error.str())
        if not error.txn_requires_abort():
            raise IngestError(f"transaction failed: {error.str()}")
        logger.warning("aborting transaction: %s", error.str())
        try:
            self._retrying(lambda: self._bounded(self._producer.abort_transaction))
        except ProducerStuckError as exc:
            self._replace_producer(exc)
            return
        self.metrics.transactions_aborted.inc()

    def _replace_producer(self, stuck: ProducerStuckError) -> None:
        """Fence the stuck producer with a new one under the same transactional id.

        The new producer's first call makes the brokers abort whatever the
        old one left open; the old one is left to its blocked thread.
        """
        if self._new_producer is None:
            raise stuck
        logger.error("replacing the transactional producer: %s", stuck)
        self._producer = self._new_producer()
        self.metrics.producers_replaced.inc()
        self._retrying(lambda: self._bounded(self._producer.init_transactions))

    def _produce(self, record: OutgoingRecord) -> None:
        while True:
            try:
                self._producer.produce(
                    topic=record.topic,
                    value=record.value,
                    key=record.key,
                    headers=record.headers,
                    partition=record.partition,
                )
                return
            except BufferError:
                self._call_timeout()
                self._producer.poll(0.05)

    def _send_offsets(self, records: Sequence[Message]) -> None:
        group = self._consumer.consumer_group_metadata()
        positions = [
            TopicPartition(
                topic,
                partition,
                offset,
                metadata=self.profiles.checkpoint(partition).encode(),
            )
            for (topic, partition), offset in batch_offsets(records).items()
        ]
        self._bounded(
            lambda timeout: self._producer.send_offsets_to_transaction(
                positions, group, timeout
            ),
            "send_offsets_to_transaction",
        )

    def _commit(self) -> None:
        self._bounded(self._producer.commit_transaction)

    def _bounded(self, call: Callable[[float], object], name: str = "") -> None:
        """Make a blocking producer call, but never wait on it without end.

        The call runs in a thread of its own. One that outlives its timeout
        by the stuck margin raises ProducerStuckError, or, once shutdown is
        under way, ShutdownDeadlineError when the grace period ends first.
        """
        timeout = self._call_timeout()
        outcome: list[BaseException] = []
        returned = threading.Event()

        def attempt() -> None:
            try:
                call(timeout)
            except BaseException as exc:
                outcome.append(exc)
            finally:
                returned.set()

        threading.Thread(
            target=attempt, name="ingest-producer-call", daemon=True
        ).start()
        margin = self.settings.stuck_call_margin_seconds
        waited = timeout + margin
        while not returned.wait(min(waited, 1.0)):
            waited -= 1.0
            self._call_timeout()
            if waited <= 0:
                name = name or getattr(call, "__name__", "a producer call")
                raise ProducerStuckError(
                    f"{name} did not return {margin:g}s past its {timeout:g}s timeout"
                )
        if outcome:
            raise outcome[0]

    def _call_timeout(self) -> float:
        """How long a broker call may wait: less once shutdown is under way."""
        if not self._stopping.is_set():
            return self.settings.broker_call_timeout_seconds
        remaining = self._stop_deadline - time.monotonic()
        if remaining <= 0:
            raise ShutdownDeadlineError(
                f"the {self.settings.shutdown_grace_seconds:g}s grace period ran out"
            )
        return min(self.settings.broker_call_timeout_seconds, remaining)

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
                self.health.beat()

    def _rewind(self, records: Sequence[Message]) -> None:
        """Seek back to the batch's first records, so that it is read again."""
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

    def watch_lag(self) -> None:
        """Tell health how many events wait on the owned partitions.

        Reads only what the consumer knows locally (its positions and the
        high watermarks of its last fetches), so it never waits on a broker.
        """
        owned = [TopicPartition(self.raw_topic, p) for p in self.health.partitions()]
        lag = 0
        for position in self._consumer.position(owned) if owned else []:
            marks = self._consumer.get_watermark_offsets(position, cached=True)
            if marks is None or marks[1] < 0 or position.offset < 0:
                continue
            lag += max(0, marks[1] - position.offset)
        self.health.lag(lag)

    def _watch_lag_until_the_loop_ends(self) -> None:
        while not self._loop_ended.wait(LAG_EVERY_SECONDS):
            try:
                self.watch_lag()
            except (KafkaException, RuntimeError) as exc:
                logger.debug("lag not measured: %s", exc)

    def _record(self, tally: BatchTally, seconds: float) -> None:
        self.totals.add(tally)
        self.health.committed()
        metrics = self.metrics
        metrics.events_consumed.inc(tally.consumed)
        for kind, count in tally.accepted.items():
            metrics.events_accepted.labels(item_kind=kind.value).inc(count)
        for reason, count in tally.dead_lettered.items():
            metrics.events_dead_lettered.labels(reason=reason).inc(count)
        for oddity, count in tally.classified.items():
            metrics.events_classified.labels(kind=oddity.value).inc(count)
        metrics.events_duplicate.inc(tally.duplicates)
        metrics.events_forwarded.inc(tally.forwarded)
        metrics.batch_seconds.observe(seconds)
        metrics.batch_events.observe(tally.consumed)
        logger.debug(
            "batch committed",
            extra={"events": tally.consumed, "seconds": round(seconds, 4)},
        )


def _disagreement(
    committed: TopicPartition | None, restored: PartitionProfiles
) -> str | None:
    """What is wrong between a committed checkpoint and restored profiles."""
    expected = restored.checkpoint()
    found = Checkpoint.decode(committed.metadata if committed is not None else None)
    if found is None:
        if expected.profiles:
            return f"no checkpoint committed, yet {expected.profiles} profiles exist"
        return None
    if found != expected:
        return (
            f"committed {found.profiles} profiles (digest {found.digest:016x}), "
            f"restored {expected.profiles} (digest {expected.digest:016x})"
        )
    return None


def _usable(message: Message) -> bool:
    """Whether a consumed message holds a record; raises when the consumer is done.

    librdkafka reports a fatal consumer error, such as another member taking
    this static instance id, through a message whose error need not say it
    is fatal: its code is ``_FATAL``.
    """
    error = message.error()
    if error is None:
        return True
    if error.fatal() or error.code() in _CONSUMER_ENDED:
        raise ConsumerFencedError(f"the consumer cannot go on: {error.str()}")
    logger.warning("consumer error: %s", error.str())
    return False


_CONSUMER_ENDED = frozenset({KafkaError._FATAL, KafkaError.FENCED_INSTANCE_ID})
