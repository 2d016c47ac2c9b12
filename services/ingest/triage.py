"""Sort consumed records into ingested events and dead letters.

Pure: it reads records and returns the records to write, so the service loop
owns every side effect and tests need no cluster.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import time
from collections.abc import Callable, Iterable, Sequence

from confluent_kafka import Message

from eventbus.codec import (
    CONTENT_TYPE_HEADER,
    ContentType,
    DecodeError,
    DecodeReason,
    decode,
)
from eventbus.contracts import BehaviourEvent, DeadLetter
from eventbus.keys import partition_for, shopper_key
from ingest.classification import ItemKind, Oddity, classify
from ingest.validation import EventTimeWindow, Refusal, RefusalReason, check_event

logger = logging.getLogger(__name__)

ITEM_KIND_HEADER = "item-kind"
RecordHeaders = list[tuple[str, str | bytes | None]]
# Folds an accepted event into its shopper's profile on the given raw
# partition; False when the event is a resend of one already ingested.
Absorb = Callable[[int, BehaviourEvent], bool]
_PROTOBUF_HEADER = (CONTENT_TYPE_HEADER, ContentType.PROTOBUF.value.encode())
_ITEM_KIND_HEADERS: dict[ItemKind, RecordHeaders] = {
    kind: [_PROTOBUF_HEADER, (ITEM_KIND_HEADER, kind.value.encode())]
    for kind in ItemKind
}
# The contract's one enum is the event type, so a JSON name outside it is an
# unknown type, as a number outside it is in protobuf.
_DECODE_REASONS = {DecodeReason.UNKNOWN_ENUM_VALUE: RefusalReason.UNKNOWN_TYPE}


@dataclasses.dataclass(frozen=True, slots=True)
class OutgoingRecord:
    """One record to write: an ingested event or a dead letter."""

    topic: str
    key: bytes | None
    value: bytes
    headers: RecordHeaders
    # -1 leaves the choice to the producer's partitioner.
    partition: int = -1


@dataclasses.dataclass
class BatchTally:
    """What one batch held, for metrics and logs."""

    consumed: int = 0
    accepted: collections.Counter[ItemKind] = dataclasses.field(
        default_factory=collections.Counter
    )
    dead_lettered: collections.Counter[str] = dataclasses.field(
        default_factory=collections.Counter
    )
    classified: collections.Counter[Oddity] = dataclasses.field(
        default_factory=collections.Counter
    )
    duplicates: int = 0
    forwarded: int = 0

    def add(self, other: BatchTally) -> None:
        """Fold another tally into this one."""
        self.consumed += other.consumed
        self.duplicates += other.duplicates
        self.forwarded += other.forwarded
        self.accepted.update(other.accepted)
        self.dead_lettered.update(other.dead_lettered)
        self.classified.update(other.classified)


@dataclasses.dataclass(frozen=True, slots=True)
class Triage:
    """Decides, record by record, where each consumed record goes.

    A valid event that arrived on another partition than its shopper's is
    forwarded to the raw topic's right partition, where it is ingested in
    turn; one that did arrive there is ingested unless ``absorb`` knows it.
    """

    raw_topic: str
    raw_partitions: int
    ingested_topic: str
    dead_letter_topic: str
    window: EventTimeWindow
    max_event_bytes: int
    clock: Callable[[], float] = time.time

    def sort(
        self, records: Iterable[Message], absorb: Absorb
    ) -> tuple[list[OutgoingRecord], BatchTally]:
        """The records to write for a batch, in input order, and its tally."""
        earliest_s, latest_s = self.window.bounds(self.clock())
        outgoing: list[OutgoingRecord] = []
        tally = BatchTally()
        for record in records:
            tally.consumed += 1
            event, refusal = self._judge(record, earliest_s, latest_s)
            if refusal is not None:
                tally.dead_lettered[refusal.reason] += 1
                outgoing.append(self._dead_letter(record, refusal))
                continue
            key = shopper_key(event).encode()
            owner = partition_for(key, self.raw_partitions)
            if record.partition() != owner:
                tally.forwarded += 1
                outgoing.append(self._forward(record, key, owner))
                continue
            if not absorb(owner, event):
                tally.duplicates += 1
                continue
            classification = classify(event)
            tally.accepted[classification.item_kind] += 1
            tally.classified.update(classification.oddities)
            outgoing.append(
                OutgoingRecord(
                    topic=self.ingested_topic,
                    key=key,
                    value=event.SerializeToString(),
                    headers=_ITEM_KIND_HEADERS[classification.item_kind],
                )
            )
        return outgoing, tally

    def _judge(
        self, record: Message, earliest_s: float, latest_s: float
    ) -> tuple[BehaviourEvent, Refusal | None]:
        """The record's event and why it may not be ingested, if it may not.

        A record that breaks the checks themselves is refused as unreadable
        rather than stopping the stream, and logged, since it shows a gap in
        them.
        """
        try:
            event, refusal = self._read(record)
            if refusal is None:
                refusal = check_event(event, earliest_s=earliest_s, latest_s=latest_s)
        except Exception as exc:
            logger.exception(
                "a record broke the checks",
                extra={
                    "topic": record.topic(),
                    "partition": record.partition(),
                    "offset": record.offset(),
                },
            )
            detail = f"{type(exc).__name__}: {exc}"
            return BehaviourEvent(), Refusal(RefusalReason.UNREADABLE, detail)
        return event, refusal

    def _read(self, record: Message) -> tuple[BehaviourEvent, Refusal | None]:
        """The record's event, or why it holds none."""
        value = record.value()
        if value is not None and len(value) > self.max_event_bytes:
            detail = f"{len(value)} bytes, over the limit of {self.max_event_bytes}"
            return BehaviourEvent(), Refusal(RefusalReason.TOO_LARGE, detail)
        try:
            return decode(BehaviourEvent, value, header_pairs(record)), None
        except DecodeError as exc:
            reason = _DECODE_REASONS.get(exc.reason, exc.reason)
            return BehaviourEvent(), Refusal(reason, exc.detail)

    def _forward(self, record: Message, key: bytes, owner: int) -> OutgoingRecord:
        return OutgoingRecord(
            topic=self.raw_topic,
            key=key,
            value=record.value() or b"",
            headers=header_pairs(record),
            partition=owner,
        )

    def _dead_letter(self, record: Message, refusal: Refusal) -> OutgoingRecord:
        letter = DeadLetter(
            reason=refusal.reason,
            detail=refusal.detail[:1000],
            original_value=record.value() or b"",
            original_key=record.key() or b"",
            source_topic=record.topic() or "",
            source_partition=_or_minus_one(record.partition()),
            source_offset=_or_minus_one(record.offset()),
        )
        letter.refused_at.FromNanoseconds(int(self.clock() * 1e9))
        return OutgoingRecord(
            topic=self.dead_letter_topic,
            key=record.key(),
            value=letter.SerializeToString(),
            headers=[_PROTOBUF_HEADER],
        )


def header_pairs(record: Message) -> RecordHeaders:
    """A record's headers as (name, value) pairs, whatever form they came in."""
    headers = record.headers()
    if headers is None:
        return []
    if isinstance(headers, dict):
        return list(headers.items())
    return headers


def _or_minus_one(number: int | None) -> int:
    return -1 if number is None else number


def batch_offsets(records: Sequence[Message]) -> dict[tuple[str, int], int]:
    """For each partition in a batch, the offset to commit: last one + 1."""
    offsets: dict[tuple[str, int], int] = {}
    for record in records:
        topic, partition, offset = record.topic(), record.partition(), record.offset()
        if topic is None or partition is None or offset is None:
            continue
        key = (topic, partition)
        offsets[key] = max(offsets.get(key, -1), offset + 1)
    return offsets


def batch_starts(records: Sequence[Message]) -> dict[tuple[str, int], int]:
    """For each partition in a batch, the first offset it holds."""
    starts: dict[tuple[str, int], int] = {}
    for record in records:
        topic, partition, offset = record.topic(), record.partition(), record.offset()
        if topic is None or partition is None or offset is None:
            continue
        key = (topic, partition)
        starts[key] = min(starts.get(key, offset), offset)
    return starts
