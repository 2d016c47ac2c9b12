"""The training snapshot: ingested events as Parquet, split by event time.

``python -m ingest snapshot`` reads the ingested topic up to its current end,
drops repeated event ids (the first record wins), orders events by time and
cuts them 7:2:1 into train, validation and test at two time boundaries: every
event before the first boundary trains, every event from the second on
tests, so no split sees the future of an earlier one. Events that share a
timestamp stay together, which makes the cut only close to 7:2:1 when many
events share the boundary's timestamp.

The snapshot id is derived from the files' contents, so the same events give
the same id and the same bytes.
"""

from __future__ import annotations

import bisect
import dataclasses
import hashlib
import json
import logging
import shutil
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    Message,
    TopicPartition,
)

from eventbus import KafkaSettings
from eventbus.contracts import BehaviourEvent, BehaviourType
from eventbus.snapshots import SNAPSHOT_SCHEMA as SCHEMA
from eventbus.snapshots import SPLITS
from ingest.classification import item_kind_of
from ingest.errors import SnapshotError
from ingest.triage import ITEM_KIND_HEADER, header_pairs

logger = logging.getLogger(__name__)

SNAPSHOT_FORMAT = 1
# Cumulative shares, in tenths, at which validation and test begin.
VALIDATION_FROM_TENTHS = 7
TEST_FROM_TENTHS = 9


_EVENT_TYPE_NAMES = {
    value: BehaviourType.Name(value).removeprefix("BEHAVIOUR_TYPE_").lower()
    for value in BehaviourType.values()
}


@dataclasses.dataclass(frozen=True, slots=True)
class SnapshotEvent:
    """One ingested event as a snapshot row, with where it was read."""

    event_id: str
    event_type: str
    user_id: str
    item_id: str
    query: str
    quantity: int
    price: float
    event_time_us: int
    session_id: str
    item_description: str
    country: str
    source: str
    item_kind: str
    partition: int = 0
    offset: int = 0

    @classmethod
    def from_event(
        cls, event: BehaviourEvent, item_kind: str, partition: int, offset: int
    ) -> SnapshotEvent:
        time_us = event.event_time.seconds * 1_000_000 + event.event_time.nanos // 1000
        return cls(
            event_id=event.event_id,
            event_type=_EVENT_TYPE_NAMES.get(event.type, "unspecified"),
            user_id=event.user_id,
            item_id=event.item_id,
            query=event.query,
            quantity=event.quantity,
            price=event.price,
            event_time_us=time_us,
            session_id=event.session_id,
            item_description=event.item_description,
            country=event.country,
            source=event.source,
            item_kind=item_kind,
            partition=partition,
            offset=offset,
        )


@dataclasses.dataclass(frozen=True)
class SplitEvents:
    """Deduplicated events in time order, cut at two time boundaries."""

    train: list[SnapshotEvent]
    validation: list[SnapshotEvent]
    test: list[SnapshotEvent]
    validation_from_us: int
    test_from_us: int
    duplicates_dropped: int

    def parts(self) -> dict[str, list[SnapshotEvent]]:
        return {
            "train": self.train,
            "validation": self.validation,
            "test": self.test,
        }


def split_events(events: Iterable[SnapshotEvent]) -> SplitEvents:
    """Drop repeated event ids, order by time and cut 7:2:1 at time boundaries."""
    by_arrival = sorted(events, key=lambda e: (e.partition, e.offset))
    seen: set[str] = set()
    unique: list[SnapshotEvent] = []
    for event in by_arrival:
        if event.event_id not in seen:
            seen.add(event.event_id)
            unique.append(event)
    if not unique:
        raise SnapshotError("no ingested events to snapshot")
    unique.sort(key=lambda e: (e.event_time_us, e.event_id))

    times = [event.event_time_us for event in unique]
    count = len(unique)
    validation_from = times[count * VALIDATION_FROM_TENTHS // 10]
    test_from = times[count * TEST_FROM_TENTHS // 10]
    first_validation = bisect.bisect_left(times, validation_from)
    first_test = bisect.bisect_left(times, test_from)
    return SplitEvents(
        train=unique[:first_validation],
        validation=unique[first_validation:first_test],
        test=unique[first_test:],
        validation_from_us=validation_from,
        test_from_us=test_from,
        duplicates_dropped=len(by_arrival) - count,
    )


def events_table(events: Sequence[SnapshotEvent]) -> pa.Table:
    """The snapshot columns for some events, in the given order."""
    columns = {
        name: [getattr(event, name) for event in events]
        for name in SCHEMA.names
        if name != "event_time"
    }
    columns["event_time"] = [event.event_time_us for event in events]
    return pa.table(
        [pa.array(columns[field.name], type=field.type) for field in SCHEMA],
        schema=SCHEMA,
    )


def write_snapshot(
    split: SplitEvents,
    snapshots_dir: Path,
    *,
    source_topic: str,
    end_offsets: Mapping[int, int],
    ingest_version: str,
    created_at: datetime | None = None,
) -> Path:
    """Write the three files and the manifest; return the snapshot directory.

    The directory appears whole or not at all. When a snapshot of the same
    events exists already, it is kept and returned.
    """
    snapshots_dir.mkdir(parents=True, exist_ok=True)
    staging = snapshots_dir / f".staging-{uuid.uuid4().hex}"
    staging.mkdir()
    try:
        checksums = {
            f"{name}.parquet": _write_parquet(events, staging / f"{name}.parquet")
            for name, events in split.parts().items()
        }
        snapshot_id = _snapshot_id(split, checksums)
        manifest = _manifest(
            split,
            snapshot_id=snapshot_id,
            checksums=checksums,
            source_topic=source_topic,
            end_offsets=end_offsets,
            ingest_version=ingest_version,
            created_at=created_at or datetime.now(UTC),
        )
        (staging / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
        target = snapshots_dir / snapshot_id
        if target.exists():
            logger.info("snapshot exists already", extra={"snapshot_id": snapshot_id})
            return target
        staging.rename(target)
        return target
    finally:
        if staging.exists():
            shutil.rmtree(staging)


def _write_parquet(events: Sequence[SnapshotEvent], path: Path) -> str:
    pq.write_table(events_table(events), path, compression="zstd")
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _snapshot_id(split: SplitEvents, checksums: Mapping[str, str]) -> str:
    digest = hashlib.sha256()
    for name in sorted(checksums):
        digest.update(f"{name}={checksums[name]}\n".encode())
    newest = max(
        (events[-1].event_time_us for events in split.parts().values() if events),
    )
    stamp = _from_us(newest).strftime("%Y%m%dT%H%M%SZ")
    return f"{stamp}-{digest.hexdigest()[:12]}"


def _manifest(
    split: SplitEvents,
    *,
    snapshot_id: str,
    checksums: Mapping[str, str],
    source_topic: str,
    end_offsets: Mapping[int, int],
    ingest_version: str,
    created_at: datetime,
) -> dict[str, object]:
    parts = split.parts()
    ordered = [event for name in SPLITS for event in parts[name]]
    return {
        "format": SNAPSHOT_FORMAT,
        "snapshot_id": snapshot_id,
        "created_at": created_at.isoformat(),
        "ingest_version": ingest_version,
        "source_topic": source_topic,
        "topic_end_offsets": {str(p): end_offsets[p] for p in sorted(end_offsets)},
        "event_time_min": _from_us(ordered[0].event_time_us).isoformat(),
        "event_time_max": _from_us(ordered[-1].event_time_us).isoformat(),
        "validation_from": _from_us(split.validation_from_us).isoformat(),
        "test_from": _from_us(split.test_from_us).isoformat(),
        "rows": {name: len(parts[name]) for name in SPLITS},
        "duplicates_dropped": split.duplicates_dropped,
        "sha256": dict(checksums),
    }


def _from_us(microseconds: int) -> datetime:
    return datetime.fromtimestamp(microseconds / 1_000_000, UTC)


@dataclasses.dataclass(frozen=True)
class IngestedLog:
    """Every event read from the ingested topic, and the end it was read to."""

    events: list[SnapshotEvent]
    end_offsets: dict[int, int]


def read_ingested_events(
    kafka: KafkaSettings, topic: str, *, timeout_seconds: float
) -> IngestedLog:
    """Read the ingested topic's committed events up to its current end."""
    events: list[SnapshotEvent] = []

    def keep(message: Message) -> None:
        events.append(_snapshot_event(message))

    ends = read_to_end(kafka, topic, keep, timeout_seconds=timeout_seconds)
    return IngestedLog(events=events, end_offsets=ends)


def read_to_end(
    kafka: KafkaSettings,
    topic: str,
    on_record: Callable[[Message], None],
    *,
    timeout_seconds: float,
) -> dict[int, int]:
    """Hand every committed record of a topic, up to its current end, to a callback.

    Returns the end offset of each partition, as found when reading began.
    """
    consumer = Consumer(
        kafka.consumer_config(
            f"recops-ingest-reader-{uuid.uuid4().hex[:8]}",
            **{"enable.partition.eof": True, "logger": logger},
        )
    )
    try:
        ends = _end_offsets(consumer, topic)
        deadline = time.monotonic() + timeout_seconds
        _read_until(consumer, topic, ends, deadline, on_record)
    finally:
        consumer.close()
    return ends


def _end_offsets(consumer: Consumer, topic: str) -> dict[int, int]:
    metadata = consumer.list_topics(topic, timeout=30)
    described = metadata.topics.get(topic)
    if described is None or described.error is not None:
        raise SnapshotError(f"topic {topic} cannot be read")
    ends: dict[int, int] = {}
    for partition in sorted(described.partitions):
        _, high = consumer.get_watermark_offsets(
            TopicPartition(topic, partition), timeout=30
        )
        ends[partition] = high
    return ends


def _read_until(
    consumer: Consumer,
    topic: str,
    ends: dict[int, int],
    deadline: float,
    on_record: Callable[[Message], None],
) -> None:
    pending = {partition for partition, end in ends.items() if end > 0}
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in pending])
    while pending:
        if time.monotonic() > deadline:
            raise SnapshotError(f"{topic} not read to its end in time: {pending}")
        for message in consumer.consume(num_messages=10_000, timeout=0.5):
            partition, offset = message.partition(), message.offset()
            if partition is None or offset is None or partition not in pending:
                continue
            error = message.error()
            if error is not None and error.code() != KafkaError._PARTITION_EOF:
                if error.fatal():
                    raise SnapshotError(f"reading {topic}: {error.str()}")
                logger.warning("reading %s: %s", topic, error.str())
                continue
            if error is None and offset < ends[partition]:
                on_record(message)
                offset += 1
            if offset >= ends[partition]:
                pending.discard(partition)


def _snapshot_event(message: Message) -> SnapshotEvent:
    event = BehaviourEvent()
    event.ParseFromString(message.value() or b"")
    raw_kind = dict(header_pairs(message)).get(ITEM_KIND_HEADER)
    if isinstance(raw_kind, bytes):
        kind = raw_kind.decode()
    else:
        kind = raw_kind or item_kind_of(event.item_id).value
    return SnapshotEvent.from_event(
        event, kind, message.partition() or 0, message.offset() or 0
    )
