"""Whether a decoded behaviour event is fit to ingest, and why not.

Refusal reasons are short machine-readable words; they label the
dead-letter metric and travel in each DeadLetter record.
"""

from __future__ import annotations

import dataclasses
import enum
import math
from datetime import datetime

from eventbus.contracts import BehaviourEvent, BehaviourType
from ingest.settings import EventTimeMode, IngestSettings

MAX_QUANTITY = 100_000
NANOS_PER_SECOND = 1_000_000_000
# The range a protobuf Timestamp may hold: 0001-01-01 to 9999-12-31.
TIMESTAMP_MIN_SECONDS = -62_135_596_800
TIMESTAMP_MAX_SECONDS = 253_402_300_799
MAX_UNIT_PRICE = 100_000.0

_KNOWN_TYPES = frozenset(
    value
    for value in BehaviourType.values()
    if value != BehaviourType.BEHAVIOUR_TYPE_UNSPECIFIED
)
_SEARCH = BehaviourType.BEHAVIOUR_TYPE_SEARCH
_RETURN = BehaviourType.BEHAVIOUR_TYPE_RETURN
# A producer that wrote milli-, micro- or nanoseconds where seconds belong
# sends a time this many times too far in the future.
_FINER_UNITS = (("milliseconds", 1e3), ("microseconds", 1e6), ("nanoseconds", 1e9))
_COUNTED_TYPES = frozenset(
    {BehaviourType.BEHAVIOUR_TYPE_ADD_TO_CART, BehaviourType.BEHAVIOUR_TYPE_PURCHASE}
)


class RefusalReason(enum.StrEnum):
    """Why ingest refused a record, beyond the codec's own reasons."""

    UNKNOWN_TYPE = "unknown_type"
    MISSING_EVENT_ID = "missing_event_id"
    MISSING_ITEM_ID = "missing_item_id"
    MISSING_QUERY = "missing_query"
    MISSING_SHOPPER = "missing_user_and_session"
    INVALID_QUANTITY = "invalid_quantity"
    INVALID_PRICE = "invalid_price"
    MISSING_EVENT_TIME = "missing_event_time"
    INVALID_EVENT_TIME = "invalid_event_time"
    EVENT_TIME_WRONG_UNIT = "event_time_wrong_unit"
    EVENT_TIME_TOO_OLD = "event_time_too_old"
    EVENT_TIME_IN_FUTURE = "event_time_in_future"
    TOO_LARGE = "too_large"
    UNREADABLE = "unreadable"


@dataclasses.dataclass(frozen=True, slots=True)
class Refusal:
    """Why one record was refused: a reason word and words for a person."""

    reason: str
    detail: str


@dataclasses.dataclass(frozen=True, kw_only=True)
class EventTimeWindow:
    """Which event times are plausible, relative to the moment of checking."""

    mode: EventTimeMode
    max_age_seconds: float
    max_future_skew_seconds: float
    earliest: datetime

    @classmethod
    def from_settings(cls, settings: IngestSettings) -> EventTimeWindow:
        return cls(
            mode=settings.event_time_mode,
            max_age_seconds=settings.max_event_age_seconds,
            max_future_skew_seconds=settings.max_future_skew_seconds,
            earliest=settings.earliest_event_time,
        )

    def bounds(self, now_s: float) -> tuple[float, float]:
        """Earliest and latest plausible event time, in epoch seconds."""
        latest = now_s + self.max_future_skew_seconds
        if self.mode is EventTimeMode.BACKFILL:
            return self.earliest.timestamp(), latest
        return now_s - self.max_age_seconds, latest


def check_event(
    event: BehaviourEvent, *, earliest_s: float, latest_s: float
) -> Refusal | None:
    """The first thing wrong with an event, or None when it may be ingested."""
    if event.type not in _KNOWN_TYPES:
        detail = f"type {event.type} is unknown" if event.type else "type is not set"
        return Refusal(RefusalReason.UNKNOWN_TYPE, detail)
    if not event.event_id.strip():
        return Refusal(RefusalReason.MISSING_EVENT_ID, "event_id is empty")
    if not event.user_id and not event.session_id:
        return Refusal(RefusalReason.MISSING_SHOPPER, "no user_id and no session_id")
    if event.type == _SEARCH:
        if not event.query.strip():
            return Refusal(RefusalReason.MISSING_QUERY, "a search without a query")
    elif not event.item_id.strip():
        return Refusal(RefusalReason.MISSING_ITEM_ID, "item_id is empty")
    return _check_amounts(event) or _check_time(event, earliest_s, latest_s)


def _check_amounts(event: BehaviourEvent) -> Refusal | None:
    quantity, price = event.quantity, event.price
    if event.type in _COUNTED_TYPES:
        quantity_ok = 1 <= quantity <= MAX_QUANTITY
    elif event.type == _RETURN:
        quantity_ok = quantity != 0 and abs(quantity) <= MAX_QUANTITY
    else:
        quantity_ok = 0 <= quantity <= MAX_QUANTITY
    if not quantity_ok:
        name = BehaviourType.Name(event.type)
        return Refusal(
            RefusalReason.INVALID_QUANTITY, f"quantity {quantity} for {name}"
        )
    if not (math.isfinite(price) and 0 <= price <= MAX_UNIT_PRICE):
        return Refusal(RefusalReason.INVALID_PRICE, f"unit price {price}")
    return None


def _check_time(
    event: BehaviourEvent, earliest_s: float, latest_s: float
) -> Refusal | None:
    if not event.HasField("event_time"):
        return Refusal(RefusalReason.MISSING_EVENT_TIME, "event_time is not set")
    at = event.event_time
    if not 0 <= at.nanos < NANOS_PER_SECOND:
        return Refusal(
            RefusalReason.INVALID_EVENT_TIME,
            f"event_time nanos {at.nanos} out of range",
        )
    seconds = at.seconds + at.nanos / NANOS_PER_SECOND
    if seconds > latest_s:
        for unit, per_second in _FINER_UNITS:
            if earliest_s <= seconds / per_second <= latest_s:
                return Refusal(
                    RefusalReason.EVENT_TIME_WRONG_UNIT,
                    f"event_time {at.seconds} looks like {unit} given as seconds",
                )
    if not TIMESTAMP_MIN_SECONDS <= at.seconds <= TIMESTAMP_MAX_SECONDS:
        return Refusal(
            RefusalReason.INVALID_EVENT_TIME,
            f"event_time {at.seconds} is outside the years 1 to 9999",
        )
    if seconds < earliest_s:
        return Refusal(
            RefusalReason.EVENT_TIME_TOO_OLD,
            f"{at.ToJsonString()} is before the accepted window",
        )
    if seconds > latest_s:
        return Refusal(
            RefusalReason.EVENT_TIME_IN_FUTURE, f"{at.ToJsonString()} is in the future"
        )
    return None
