import math
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from eventbus.contracts import BehaviourEvent, BehaviourType
from ingest.settings import EventTimeMode
from ingest.validation import (
    MAX_QUANTITY,
    EventTimeWindow,
    Refusal,
    RefusalReason,
    check_event,
)

EventFactory = Callable[..., BehaviourEvent]

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
BACKFILL = EventTimeWindow(
    mode=EventTimeMode.BACKFILL,
    max_age_seconds=86_400.0,
    max_future_skew_seconds=300.0,
    earliest=datetime(2000, 1, 1, tzinfo=UTC),
)
LIVE = EventTimeWindow(
    mode=EventTimeMode.LIVE,
    max_age_seconds=86_400.0,
    max_future_skew_seconds=300.0,
    earliest=datetime(2000, 1, 1, tzinfo=UTC),
)


def check(event: BehaviourEvent, window: EventTimeWindow = BACKFILL) -> Refusal | None:
    earliest_s, latest_s = window.bounds(NOW.timestamp())
    return check_event(event, earliest_s=earliest_s, latest_s=latest_s)


def reason_of(event: BehaviourEvent, window: EventTimeWindow = BACKFILL) -> str:
    refusal = check(event, window)
    assert refusal is not None
    return refusal.reason


def test_a_replayed_purchase_from_2011_is_accepted_in_backfill_mode(
    make_event: EventFactory,
) -> None:
    assert check(make_event()) is None


def test_an_unspecified_type_is_refused_as_unknown(make_event: EventFactory) -> None:
    event = make_event(type=BehaviourType.BEHAVIOUR_TYPE_UNSPECIFIED)

    assert reason_of(event) == RefusalReason.UNKNOWN_TYPE


def test_a_type_number_outside_the_contract_is_refused_as_unknown(
    make_event: EventFactory,
) -> None:
    event = make_event()
    event.ParseFromString(event.SerializeToString() + b"\x10\x63")  # type = 99

    assert reason_of(event) == RefusalReason.UNKNOWN_TYPE


def test_an_event_without_event_id_is_refused(make_event: EventFactory) -> None:
    assert reason_of(make_event(event_id="")) == RefusalReason.MISSING_EVENT_ID


def test_a_blank_event_id_is_refused_like_a_missing_one(
    make_event: EventFactory,
) -> None:
    assert reason_of(make_event(event_id="  ")) == RefusalReason.MISSING_EVENT_ID


def test_a_purchase_without_item_is_refused(make_event: EventFactory) -> None:
    assert reason_of(make_event(item_id="")) == RefusalReason.MISSING_ITEM_ID


def test_a_search_needs_a_query_but_no_item(make_event: EventFactory) -> None:
    search = BehaviourType.BEHAVIOUR_TYPE_SEARCH
    with_query = make_event(type=search, item_id="", quantity=0, price=0.0, query="mug")
    without_query = make_event(type=search, item_id="", quantity=0, price=0.0)

    assert check(with_query) is None
    assert reason_of(without_query) == RefusalReason.MISSING_QUERY


def test_an_event_of_nobody_is_refused(make_event: EventFactory) -> None:
    event = make_event(user_id="", session_id="")

    assert reason_of(event) == RefusalReason.MISSING_SHOPPER


def test_a_guest_with_a_session_is_accepted(make_event: EventFactory) -> None:
    assert check(make_event(user_id="", session_id="536414")) is None


@pytest.mark.parametrize("quantity", [0, -10, MAX_QUANTITY + 1])
def test_a_purchase_of_no_or_negative_or_absurd_quantity_is_refused(
    make_event: EventFactory, quantity: int
) -> None:
    assert reason_of(make_event(quantity=quantity)) == RefusalReason.INVALID_QUANTITY


def test_a_return_counts_goods_back_with_a_negative_quantity(
    make_event: EventFactory,
) -> None:
    returned = BehaviourType.BEHAVIOUR_TYPE_RETURN

    assert check(make_event(type=returned, quantity=-12)) is None
    assert reason_of(make_event(type=returned, quantity=0)) == "invalid_quantity"


def test_a_view_may_carry_no_quantity_but_not_a_negative_one(
    make_event: EventFactory,
) -> None:
    view = BehaviourType.BEHAVIOUR_TYPE_VIEW

    assert check(make_event(type=view, quantity=0)) is None
    assert reason_of(make_event(type=view, quantity=-1)) == "invalid_quantity"


@pytest.mark.parametrize("price", [-11062.06, math.nan, math.inf, 1e9])
def test_a_negative_unset_or_absurd_price_is_refused(
    make_event: EventFactory, price: float
) -> None:
    assert reason_of(make_event(price=price)) == RefusalReason.INVALID_PRICE


def test_a_zero_price_is_accepted(make_event: EventFactory) -> None:
    assert check(make_event(price=0.0)) is None


def test_an_event_without_time_is_refused(make_event: EventFactory) -> None:
    event = make_event(event_time=None)

    assert reason_of(event) == RefusalReason.MISSING_EVENT_TIME


def test_backfill_refuses_times_before_its_earliest_instant(
    make_event: EventFactory,
) -> None:
    event = make_event(event_time=datetime(1999, 12, 31, tzinfo=UTC))

    assert reason_of(event) == RefusalReason.EVENT_TIME_TOO_OLD


def test_live_mode_refuses_the_replays_historical_times(
    make_event: EventFactory,
) -> None:
    assert reason_of(make_event(), LIVE) == RefusalReason.EVENT_TIME_TOO_OLD


def test_live_mode_accepts_an_event_from_a_minute_ago(
    make_event: EventFactory,
) -> None:
    event = make_event(event_time=NOW - timedelta(minutes=1))

    assert check(event, LIVE) is None


@pytest.mark.parametrize("window", [LIVE, BACKFILL])
def test_an_event_from_beyond_the_clock_skew_is_refused_in_every_mode(
    make_event: EventFactory, window: EventTimeWindow
) -> None:
    event = make_event(event_time=NOW + timedelta(minutes=6))

    assert reason_of(event, window) == RefusalReason.EVENT_TIME_IN_FUTURE


def test_an_event_within_the_clock_skew_is_accepted(
    make_event: EventFactory,
) -> None:
    assert check(make_event(event_time=NOW + timedelta(minutes=4)), LIVE) is None


@pytest.mark.parametrize(("unit", "per_second"), [("milli", 1_000), ("micro", 10**6)])
def test_a_time_in_a_finer_unit_than_seconds_is_refused_as_the_wrong_unit(
    make_event: EventFactory, unit: str, per_second: int
) -> None:
    event = make_event()
    event.event_time.seconds = int(NOW.timestamp()) * per_second

    refusal = check(event, LIVE)

    assert refusal is not None
    assert refusal.reason == "event_time_wrong_unit"
    assert f"{unit}seconds" in refusal.detail


def test_a_far_future_time_that_no_unit_explains_is_in_the_future(
    make_event: EventFactory,
) -> None:
    event = make_event()
    event.event_time.FromDatetime(datetime(2400, 1, 1))

    assert reason_of(event, LIVE) == "event_time_in_future"


@pytest.mark.parametrize(
    ("seconds", "nanos"),
    [(10**17, 0), (-(10**12), 0), (1_291_191_960, -5), (1_291_191_960, 2 * 10**9)],
)
def test_a_time_no_timestamp_can_hold_is_refused_as_invalid(
    make_event: EventFactory, seconds: int, nanos: int
) -> None:
    event = make_event()
    event.event_time.seconds, event.event_time.nanos = seconds, nanos

    assert reason_of(event) == "invalid_event_time"


def test_nanoseconds_given_as_seconds_are_the_wrong_unit_though_out_of_range(
    make_event: EventFactory,
) -> None:
    event = make_event()
    event.event_time.seconds = int(NOW.timestamp()) * 10**9

    assert reason_of(event, LIVE) == "event_time_wrong_unit"


def test_an_event_without_a_type_says_the_type_is_missing(
    make_event: EventFactory,
) -> None:
    refusal = check(make_event(type=BehaviourType.BEHAVIOUR_TYPE_UNSPECIFIED))

    assert refusal == Refusal("unknown_type", "type is not set")
