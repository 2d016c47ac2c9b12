"""The topics recops services talk through, and how they are created.

Every topic is replicated three times and refuses writes with fewer than two
in-sync replicas, so an acknowledged event survives the loss of one broker.
"""

from __future__ import annotations

import dataclasses
import enum
import logging
import time
import uuid

from confluent_kafka import (
    Consumer,
    KafkaError,
    KafkaException,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

logger = logging.getLogger(__name__)


class Topic(enum.StrEnum):
    """Topic names, before the deployment's prefix."""

    BEHAVIOUR_EVENTS = "behaviour-events"
    INGESTED_EVENTS = "ingested-events"
    DEAD_LETTER = "behaviour-events.dead-letter"
    USER_PROFILES = "user-profiles"
    SERVED_RECOMMENDATIONS = "served-recommendations"
    MODEL_READY = "model-ready"
    ALERTS = "alerts"
    DRILL_COMMANDS = "drill-commands"
    DRILL_RESULTS = "drill-results"


@dataclasses.dataclass(frozen=True, kw_only=True)
class TopicSpec:
    """How one topic is laid out on the cluster."""

    topic: Topic
    partitions: int
    replication_factor: int = 3
    config: tuple[tuple[str, str], ...] = ()

    def new_topic(self, prefix: str) -> NewTopic:
        config = {"min.insync.replicas": "2", **dict(self.config)}
        return NewTopic(
            prefix + self.topic.value,
            num_partitions=self.partitions,
            replication_factor=self.replication_factor,
            config=config,
        )


# Kafka's default record batch limit, which the brokers and most topics keep.
BROKER_RECORD_MAX_BYTES = 1_048_588
# A dead letter carries the refused record whole, plus why and where from.
DEAD_LETTER_MAX_BYTES = 2 * BROKER_RECORD_MAX_BYTES

# Small segments and an eager cleaner, so a changelog that is rewritten batch
# after batch is compacted while it is still young and restores stay quick.
COMPACTED = (
    ("cleanup.policy", "compact"),
    ("segment.bytes", str(16 * 1024 * 1024)),
    ("min.cleanable.dirty.ratio", "0.1"),
)

TOPIC_SPECS: tuple[TopicSpec, ...] = (
    TopicSpec(topic=Topic.BEHAVIOUR_EVENTS, partitions=6),
    TopicSpec(topic=Topic.INGESTED_EVENTS, partitions=6),
    TopicSpec(
        topic=Topic.DEAD_LETTER,
        partitions=3,
        config=(("max.message.bytes", str(DEAD_LETTER_MAX_BYTES)),),
    ),
    TopicSpec(topic=Topic.USER_PROFILES, partitions=6, config=COMPACTED),
    TopicSpec(topic=Topic.SERVED_RECOMMENDATIONS, partitions=6),
    TopicSpec(topic=Topic.MODEL_READY, partitions=1),
    TopicSpec(topic=Topic.ALERTS, partitions=1),
    TopicSpec(topic=Topic.DRILL_COMMANDS, partitions=1),
    TopicSpec(topic=Topic.DRILL_RESULTS, partitions=1),
)


def ensure_topics(
    admin: AdminClient,
    prefix: str,
    specs: tuple[TopicSpec, ...] = TOPIC_SPECS,
    *,
    timeout_s: float = 60.0,
) -> list[str]:
    """Create the topics that do not exist yet; return the names created.

    Retries while the cluster is still electing its controller or waiting for
    enough brokers to place three replicas.
    """
    deadline = time.monotonic() + timeout_s
    created: list[str] = []
    pending = list(specs)
    while pending:
        futures = admin.create_topics(
            [spec.new_topic(prefix) for spec in pending], operation_timeout=30
        )
        retry: list[TopicSpec] = []
        for spec, (name, future) in zip(pending, futures.items(), strict=True):
            try:
                future.result()
                created.append(name)
            except KafkaException as exc:
                error = exc.args[0]
                if error.code() == KafkaError.TOPIC_ALREADY_EXISTS:
                    continue
                if not error.retriable() and error.code() not in _WAIT_FOR_BROKERS:
                    raise
                logger.warning("topic %s not created yet: %s", name, error.str())
                retry.append(spec)
        if retry and time.monotonic() > deadline:
            raise TimeoutError(f"topics not created within {timeout_s}s: {retry}")
        if retry:
            time.sleep(1.0)
        pending = retry
    return created


_WAIT_FOR_BROKERS = {
    KafkaError.INVALID_REPLICATION_FACTOR,
    KafkaError.NOT_CONTROLLER,
    KafkaError.REQUEST_TIMED_OUT,
}


def load_coordinators(bootstrap_servers: str, *, timeout_s: float = 60.0) -> None:
    """Make the cluster create and load its group and transaction coordinators.

    Kafka creates its internal offsets and transaction-state topics on first
    use. Doing that right after start, rather than in the middle of the first
    broker failure, keeps a fresh cluster from spending minutes loading
    coordinators while a node is down.
    """
    producer = Producer(
        {
            "bootstrap.servers": bootstrap_servers,
            "transactional.id": f"recops-coordinator-check-{uuid.uuid4().hex[:8]}",
        }
    )
    producer.init_transactions(timeout_s)
    producer.begin_transaction()
    producer.abort_transaction(timeout_s)

    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap_servers,
            "group.id": "recops-coordinator-check",
            "enable.auto.commit": False,
        }
    )
    try:
        metadata = consumer.list_topics(timeout=timeout_s)
        topic = next(name for name in metadata.topics if not name.startswith("__"))
        consumer.commit(offsets=[TopicPartition(topic, 0, 0)], asynchronous=False)
    finally:
        consumer.close()
