from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from confluent_kafka import Message

from eventbus import ContentType, encode
from eventbus.contracts import BehaviourEvent, BehaviourType, DeadLetter
from eventbus.keys import partition_for, shopper_key
from ingest.classification import ItemKind, Oddity
from ingest.settings import EventTimeMode
from ingest.triage import (
    BatchTally,
    OutgoingRecord,
    Triage,
    batch_offsets,
    batch_starts,
)
from ingest.validation import EventTimeWindow

EventFactory = Callable[..., BehaviourEvent]

NOW_S = datetime(2026, 12, 3, 12, 0, tzinfo=UTC).timestamp()
TRIAGE = Triage(
    raw_topic="t.behaviour-events",
    raw_partitions=6,
    ingested_topic="t.ingested-events",
    dead_letter_topic="t.behaviour-events.dead-letter",
    window=EventTimeWindow(
        mode=EventTimeMode.BACKFILL,
        max_age_seconds=86_400.0,
        max_future_skew_seconds=300.0,
        earliest=datetime(2000, 1, 1, tzinfo=UTC),
    ),
    max_event_bytes=4096,
    clock=lambda: NOW_S,
)


def sort(records: list[Message]) -> tuple[list[OutgoingRecord], BatchTally]:
    """Triage a batch of events none of which was seen before."""
    return TRIAGE.sort(records, lambda partition, event: True)


def record(
    value: bytes,
    headers: list[tuple[str, str | bytes | None]] | None = None,
    *,
    partition: int = 3,  # where the partitioner puts shopper 17850
    offset: int = 41,
    key: bytes = b"17850",
) -> Message:
    return Message(
        topic="t.behaviour-events",
        partition=partition,
        offset=offset,
        key=key,
        value=value,
        headers=headers if headers is not None else [],
    )


def encoded(event: BehaviourEvent, content_type: ContentType) -> Message:
    """An event as its producer sends it: on its shopper's partition."""
    value, headers = encode(event, content_type)
    key = shopper_key(event).encode()
    return record(value, list(headers), key=key, partition=partition_for(key, 6))


def dead_letter_of(message: Message) -> DeadLetter:
    (outgoing,), tally = sort([message])
    assert outgoing.topic == "t.behaviour-events.dead-letter"
    assert sum(tally.dead_lettered.values()) == 1
    letter = DeadLetter()
    letter.ParseFromString(outgoing.value)
    return letter


def test_a_valid_protobuf_event_is_forwarded_with_its_item_kind(
    make_event: EventFactory,
) -> None:
    event = make_event()

    (outgoing,), tally = sort([encoded(event, ContentType.PROTOBUF)])

    assert outgoing.topic == "t.ingested-events"
    assert outgoing.key == b"17850"
    assert ("item-kind", b"product") in outgoing.headers
    assert BehaviourEvent.FromString(outgoing.value) == event
    assert tally.accepted == {ItemKind.PRODUCT: 1}


def test_a_json_event_is_forwarded_as_protobuf(make_event: EventFactory) -> None:
    event = make_event(item_id="POST")

    (outgoing,), tally = sort([encoded(event, ContentType.JSON)])

    assert BehaviourEvent.FromString(outgoing.value) == event
    assert ("content-type", b"application/x-protobuf") in outgoing.headers
    assert ("item-kind", b"non_product") in outgoing.headers
    assert tally.classified == {Oddity.NON_PRODUCT: 1}


def test_a_guest_event_is_keyed_by_its_session(make_event: EventFactory) -> None:
    event = make_event(user_id="", session_id="536414")

    (outgoing,), tally = sort([encoded(event, ContentType.PROTOBUF)])

    assert outgoing.key == b"session:536414"
    assert tally.classified == {Oddity.GUEST: 1}


def test_json_that_is_not_utf8_is_dead_lettered_with_its_original_bytes() -> None:
    value = b'{"eventId": "\xff\xfe"}'

    letter = dead_letter_of(record(value, [("content-type", b"application/json")]))

    assert letter.reason == "invalid_utf8"
    assert letter.original_value == value
    assert letter.original_key == b"17850"
    assert (letter.source_topic, letter.source_partition, letter.source_offset) == (
        "t.behaviour-events",
        3,
        41,
    )
    assert letter.refused_at.ToSeconds() == int(NOW_S)


def test_a_truncated_protobuf_is_dead_lettered(make_event: EventFactory) -> None:
    whole = make_event().SerializeToString()
    truncated = whole[: whole.index(b"WHITE HANGING") + 5]

    letter = dead_letter_of(record(truncated))

    assert letter.reason == "invalid_protobuf"
    assert letter.original_value == truncated


def test_json_with_a_type_name_outside_the_contract_is_an_unknown_type() -> None:
    value = b'{"eventId": "x-1", "type": "BEHAVIOUR_TYPE_TELEPORT"}'

    letter = dead_letter_of(record(value, [("content-type", b"application/json")]))

    assert letter.reason == "unknown_type"
    assert "BEHAVIOUR_TYPE_TELEPORT" in letter.detail


def test_json_with_a_field_of_the_wrong_type_is_dead_lettered() -> None:
    value = b'{"eventId": "x-1", "quantity": "six"}'

    letter = dead_letter_of(record(value, [("content-type", b"application/json")]))

    assert letter.reason == "wrong_field_type"
    assert "quantity" in letter.detail


def test_an_event_over_the_size_limit_is_dead_lettered_whole(
    make_event: EventFactory,
) -> None:
    event = make_event(item_description="x" * 5000)

    letter = dead_letter_of(encoded(event, ContentType.PROTOBUF))

    assert letter.reason == "too_large"
    assert letter.original_value == event.SerializeToString()


def test_an_event_just_within_the_size_limit_is_ingested(
    make_event: EventFactory,
) -> None:
    event = make_event(item_description="")
    padding = 4096 - event.ByteSize() - 3  # the field's tag and two length bytes
    event.item_description = "x" * padding
    assert event.ByteSize() == 4096

    (outgoing,), _ = sort([encoded(event, ContentType.PROTOBUF)])

    assert outgoing.topic == "t.ingested-events"


def test_an_unknown_type_is_dead_lettered_with_a_detail(
    make_event: EventFactory,
) -> None:
    event = make_event(type=BehaviourType.BEHAVIOUR_TYPE_UNSPECIFIED)

    letter = dead_letter_of(encoded(event, ContentType.PROTOBUF))

    assert letter.reason == "unknown_type"
    assert letter.detail


def test_an_event_with_no_ids_is_dead_lettered(make_event: EventFactory) -> None:
    event = make_event(event_id="", user_id="", session_id="")

    letter = dead_letter_of(encoded(event, ContentType.JSON))

    assert letter.reason == "missing_event_id"


def test_an_empty_record_is_dead_lettered() -> None:
    assert dead_letter_of(record(b"")).reason == "empty_payload"


def test_an_unknown_content_type_is_dead_lettered(make_event: EventFactory) -> None:
    value = make_event().SerializeToString()

    letter = dead_letter_of(record(value, [("content-type", b"text/csv")]))

    assert letter.reason == "unknown_content_type"


def test_a_batch_keeps_its_order_and_tallies_every_outcome(
    make_event: EventFactory,
) -> None:
    batch = [
        encoded(make_event(event_id="a"), ContentType.PROTOBUF),
        record(b"\xff"),
        encoded(make_event(event_id="b", price=0.0), ContentType.JSON),
        encoded(make_event(event_id="c", quantity=-5), ContentType.PROTOBUF),
    ]

    outgoing, tally = sort(batch)

    assert [o.topic.rsplit(".", 1)[-1] for o in outgoing] == [
        "ingested-events",
        "dead-letter",
        "ingested-events",
        "dead-letter",
    ]
    assert tally.consumed == 4
    assert tally.accepted == {ItemKind.PRODUCT: 2}
    assert tally.dead_lettered == {"invalid_protobuf": 1, "invalid_quantity": 1}
    assert tally.classified == {Oddity.ZERO_PRICE: 1}


def test_offsets_to_commit_are_one_past_each_partitions_last_record() -> None:
    batch = [
        record(b"x", partition=0, offset=7),
        record(b"x", partition=1, offset=3),
        record(b"x", partition=0, offset=8),
    ]

    assert batch_offsets(batch) == {
        ("t.behaviour-events", 0): 9,
        ("t.behaviour-events", 1): 4,
    }
    assert batch_starts(batch) == {
        ("t.behaviour-events", 0): 7,
        ("t.behaviour-events", 1): 3,
    }


def test_an_event_on_another_partition_than_its_shoppers_is_forwarded_there(
    make_event: EventFactory,
) -> None:
    value, headers = encode(make_event(), ContentType.JSON)
    arrived = record(value, list(headers), key=b"", partition=0)

    (outgoing,), tally = sort([arrived])

    assert (outgoing.topic, outgoing.partition) == ("t.behaviour-events", 3)
    assert (outgoing.key, outgoing.value) == (b"17850", value)
    assert ("content-type", b"application/json") in outgoing.headers
    assert tally.forwarded == 1 and not tally.accepted


def test_an_event_its_profile_already_holds_is_absorbed_not_forwarded(
    make_event: EventFactory,
) -> None:
    absorbed: list[tuple[int, str]] = []

    def absorb(partition: int, event: BehaviourEvent) -> bool:
        absorbed.append((partition, event.event_id))
        return event.event_id != "536365-2"

    batch = [
        encoded(make_event(), ContentType.PROTOBUF),
        encoded(make_event(event_id="536365-3"), ContentType.PROTOBUF),
    ]
    (outgoing,), tally = TRIAGE.sort(batch, absorb)

    assert absorbed == [(3, "536365-2"), (3, "536365-3")]
    assert BehaviourEvent.FromString(outgoing.value).event_id == "536365-3"
    assert tally.duplicates == 1
    assert tally.accepted == {ItemKind.PRODUCT: 1}


def test_a_record_that_breaks_the_checks_is_refused_as_unreadable_not_raised(
    make_event: EventFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*_: object, **__: object) -> None:
        raise ValueError("a gap in the checks")

    monkeypatch.setattr("ingest.triage.check_event", broken)

    letter = dead_letter_of(encoded(make_event(), ContentType.PROTOBUF))

    assert letter.reason == "unreadable"
    assert letter.detail == "ValueError: a gap in the checks"
