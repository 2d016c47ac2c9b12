"""Builders of behaviour events for the ingest unit tests."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from eventbus.contracts import BehaviourEvent, BehaviourType

EventFactory = Callable[..., BehaviourEvent]

# An instant inside the retail data's year, as the replay sends them.
REPLAY_TIME = datetime(2011, 3, 15, 10, 30, tzinfo=UTC)


@pytest.fixture
def make_event() -> EventFactory:
    """A valid purchase by a signed-in shopper, with any field replaced."""

    def build(
        *, event_time: datetime | None = REPLAY_TIME, **fields: object
    ) -> BehaviourEvent:
        values: dict[str, object] = {
            "event_id": "536365-2",
            "type": BehaviourType.BEHAVIOUR_TYPE_PURCHASE,
            "user_id": "17850",
            "item_id": "85123A",
            "item_description": "WHITE HANGING HEART T-LIGHT HOLDER",
            "quantity": 6,
            "price": 2.55,
            "session_id": "536365",
            "country": "United Kingdom",
            "source": "replay",
        }
        values.update(fields)
        event = BehaviourEvent(**values)  # type: ignore[arg-type]
        if event_time is not None:
            event.event_time.FromDatetime(event_time)
        return event

    return build
