from __future__ import annotations

import threading
from datetime import UTC, datetime
from typing import Any

from confluent_kafka import KafkaError, Message

from eventbus import ContentType, decode
from eventbus.contracts import BehaviourEvent, BehaviourType
from ingest.replay import (
    DEFAULT_DATA,
    Pacer,
    Replayer,
    ShopClock,
    event_from_row,
    read_lines,
)
from ingest.triage import header_pairs

FIRST_LINES = dict(read_lines(DEFAULT_DATA, limit=3_000))


class FakeProducer:
    """Acknowledges every event on poll, except the ones it is told to fail."""

    def __init__(self, fail_event_ids: frozenset[str] = frozenset()) -> None:
        self.fail_event_ids = fail_event_ids
        self.pending: list[tuple[Message, Any]] = []
        self.sent: list[Message] = []

    def produce(self, topic: str, **fields: Any) -> None:
        message = Message(
            topic=topic,
            key=fields["key"],
            value=fields["value"],
            headers=fields["headers"],
        )
        self.pending.append((message, fields["on_delivery"]))
        self.sent.append(message)

    def poll(self, timeout: float = -1) -> int:
        done, self.pending = self.pending, []
        for message, on_delivery in done:
            event = decode(BehaviourEvent, message.value(), header_pairs(message))
            failed = event.event_id in self.fail_event_ids
            error = KafkaError(KafkaError._MSG_TIMED_OUT) if failed else None
            on_delivery(error, message)
        return len(done)

    def flush(self, timeout: float = -1) -> int:
        self.poll()
        return 0


def mapped(line_number: int) -> BehaviourEvent:
    return event_from_row(FIRST_LINES[line_number], line_number, ShopClock())


def test_the_first_line_becomes_a_purchase_by_its_customer() -> None:
    event = mapped(2)

    assert event.event_id == "536365-2"
    assert event.type == BehaviourType.BEHAVIOUR_TYPE_PURCHASE
    assert event.user_id == "17850"
    assert event.item_id == "85123A"
    assert event.item_description == "WHITE HANGING HEART T-LIGHT HOLDER"
    assert (event.quantity, event.price) == (6, 2.55)
    assert event.session_id == "536365"
    assert (event.country, event.source) == ("United Kingdom", "replay")
    assert event.event_time.ToDatetime(UTC) == datetime(2010, 12, 1, 8, 26, tzinfo=UTC)


def test_a_cancelled_invoice_line_becomes_a_return() -> None:
    line_number = next(n for n, row in FIRST_LINES.items() if row[0].startswith("C"))

    event = mapped(line_number)

    assert event.type == BehaviourType.BEHAVIOUR_TYPE_RETURN
    assert event.quantity < 0
    assert event.event_id == f"{FIRST_LINES[line_number][0]}-{line_number}"


def test_a_guest_line_has_no_user_but_its_invoice_as_session() -> None:
    line_number = next(n for n, row in FIRST_LINES.items() if row[6] == "")

    event = mapped(line_number)

    assert event.user_id == ""
    assert event.session_id == FIRST_LINES[line_number][0]


def test_line_numbers_count_the_header_as_line_one() -> None:
    assert min(FIRST_LINES) == 2
    assert FIRST_LINES[2][0] == "536365"


def test_shop_times_are_london_time_so_summer_times_are_an_hour_ahead_of_utc() -> None:
    clock = ShopClock()

    winter = clock.epoch_seconds("2010-12-01 08:26:00")
    summer = clock.epoch_seconds("2011-06-01 12:00:00")

    assert winter == datetime(2010, 12, 1, 8, 26, tzinfo=UTC).timestamp()
    assert summer == datetime(2011, 6, 1, 11, 0, tzinfo=UTC).timestamp()


def test_replayer_counts_acknowledged_and_failed_events() -> None:
    lines = list(FIRST_LINES.items())[:50]
    producer = FakeProducer(fail_event_ids=frozenset({"536365-3"}))
    replayer = Replayer(producer, "t.behaviour-events", keep_acknowledged_ids=True)

    summary = replayer.replay(lines)

    assert summary.events_sent == 50
    assert summary.events_acknowledged == 49
    assert summary.events_failed == 1
    assert "536365-3" not in replayer.acknowledged_ids
    assert len(set(replayer.acknowledged_ids)) == 49


def test_replayer_keys_guests_by_session_and_can_send_json() -> None:
    line_number = next(n for n, row in FIRST_LINES.items() if row[6] == "")
    producer = FakeProducer()
    replayer = Replayer(producer, "t.behaviour-events", content_type=ContentType.JSON)

    replayer.replay([(line_number, FIRST_LINES[line_number])])

    (message,) = producer.sent
    assert message.key() == b"session:" + FIRST_LINES[line_number][0].encode()
    assert (message.headers() or [])[0] == ("content-type", b"application/json")


def test_a_line_that_does_not_parse_is_skipped_and_counted() -> None:
    broken = ["536365", "85123A", "HEART", "six", "2010-12-01 08:26:00", "2.55"]
    lines = [(2, [*broken, "17850.0", "United Kingdom"]), (3, FIRST_LINES[3])]
    producer = FakeProducer()

    summary = Replayer(producer, "t.behaviour-events").replay(lines)

    assert (summary.lines_skipped, summary.events_sent) == (1, 1)


def test_a_stopped_replayer_sends_nothing_more() -> None:
    stopping = threading.Event()
    stopping.set()
    producer = FakeProducer()

    summary = Replayer(producer, "t", stopping=stopping).replay(FIRST_LINES.items())

    assert summary.events_sent == 0


def test_pacing_divides_the_original_gaps_by_the_speedup() -> None:
    one_hour = 3_600.0

    assert Pacer(speedup=60.0).due_after(1_000.0, 1_000.0 + one_hour) == 60.0
    assert Pacer(speedup=None).due_after(1_000.0, 1_000.0 + one_hour) == 0.0
    assert Pacer(speedup=60.0).due_after(1_000.0, 500.0) == 0.0
