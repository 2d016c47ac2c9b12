"""Restoring raw partitions' profiles from the profiles topic, their changelog.

Restoring reads a changelog partition from its start to its last stable
offset, so records of a transaction still open or aborted are never
applied, and each key's last record wins, as compaction would leave it.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Sequence
from typing import Protocol

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

from eventbus import KafkaSettings
from ingest.errors import BrokerError, IngestError
from ingest.profiles import PartitionProfiles

logger = logging.getLogger(__name__)

READ_BATCH = 5_000


class ChangelogReader(Protocol):
    """Rebuilds the profiles of raw partitions from their changelog."""

    def restore(self, partitions: Sequence[int]) -> dict[int, PartitionProfiles]: ...


class KafkaChangelogReader:
    """Reads the compacted profiles topic with a consumer of its own."""

    def __init__(
        self, kafka: KafkaSettings, topic: str, *, timeout_seconds: float
    ) -> None:
        self.topic = topic
        self._kafka = kafka
        self._timeout_seconds = timeout_seconds

    def restore(self, partitions: Sequence[int]) -> dict[int, PartitionProfiles]:
        restored = {partition: PartitionProfiles() for partition in partitions}
        if not partitions:
            return restored
        started = time.monotonic()
        consumer = Consumer(
            self._kafka.consumer_config(
                f"recops-ingest-restore-{uuid.uuid4().hex[:8]}",
                **{"enable.partition.eof": True, "logger": logger},
            )
        )
        try:
            consumer.assign(
                [TopicPartition(self.topic, p, OFFSET_BEGINNING) for p in partitions]
            )
            records = self._read_to_end(consumer, restored)
        finally:
            consumer.close()
        logger.info(
            "profiles restored",
            extra={
                "topic": self.topic,
                "partitions": list(partitions),
                "records": records,
                "profiles": sum(len(p.shoppers) for p in restored.values()),
                "seconds": round(time.monotonic() - started, 3),
            },
        )
        return restored

    def _read_to_end(
        self, consumer: Consumer, restored: dict[int, PartitionProfiles]
    ) -> int:
        pending = set(restored)
        deadline = time.monotonic() + self._timeout_seconds
        records = 0
        while pending:
            if time.monotonic() > deadline:
                raise BrokerError(
                    f"{self.topic} partitions {sorted(pending)} not restored "
                    f"within {self._timeout_seconds:g}s"
                )
            for message in consumer.consume(num_messages=READ_BATCH, timeout=0.5):
                partition, key = message.partition(), message.key()
                error = message.error()
                if partition not in pending:
                    continue
                if error is None and key is not None:
                    restored[partition].load(key, message.value())
                    records += 1
                elif error is not None and error.code() == KafkaError._PARTITION_EOF:
                    pending.discard(partition)
                elif error is not None and error.fatal():
                    raise IngestError(f"restoring {self.topic}: {error.str()}")
                elif error is not None:
                    logger.warning("restoring %s: %s", self.topic, error.str())
        return records
