from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from eventbus.contracts import BehaviourEvent, BehaviourType, UserProfile
from ingest.profiles import (
    Checkpoint,
    PartitionProfiles,
    ProfileLimits,
    ProfileStore,
)

EventFactory = Callable[..., BehaviourEvent]


def store(**limits: int) -> ProfileStore:
    profiles = ProfileStore(ProfileLimits(**limits))
    profiles.adopt(3, PartitionProfiles())
    return profiles


def committed(profiles: ProfileStore) -> list[tuple[int, bytes, bytes]]:
    changes = profiles.changes()
    profiles.commit()
    return [(change.partition, change.key, change.value) for change in changes]


def restored(records: list[tuple[int, bytes, bytes]]) -> PartitionProfiles:
    partition = PartitionProfiles()
    for _, key, value in records:
        partition.load(key, value)
    return partition


def test_a_profile_counts_types_keeps_the_latest_items_and_widens_its_span(
    make_event: EventFactory,
) -> None:
    profiles = store(recent_items=2)
    events = [
        make_event(
            event_id="1", item_id="A", event_time=datetime(2011, 3, 2, tzinfo=UTC)
        ),
        make_event(
            event_id="2", item_id="B", event_time=datetime(2011, 3, 1, tzinfo=UTC)
        ),
        make_event(
            event_id="3",
            item_id="C",
            type=BehaviourType.BEHAVIOUR_TYPE_RETURN,
            quantity=-1,
            event_time=datetime(2011, 3, 3, tzinfo=UTC),
        ),
    ]

    assert all(profiles.absorb(3, event) for event in events)

    profile = profiles.profile(3, "17850")
    assert profile is not None
    assert list(profile.recent_items) == ["B", "C"]
    assert dict(profile.event_counts) == {"purchase": 2, "return": 1}
    assert profile.events_total == 3
    assert profile.first_seen.ToDatetime(UTC) == datetime(2011, 3, 1, tzinfo=UTC)
    assert profile.last_seen.ToDatetime(UTC) == datetime(2011, 3, 3, tzinfo=UTC)


def test_a_resend_is_absorbed_while_it_is_within_the_shoppers_window(
    make_event: EventFactory,
) -> None:
    profiles = store(recent_event_ids=2)
    for event_id in ("a", "b"):
        profiles.absorb(3, make_event(event_id=event_id))

    assert not profiles.absorb(3, make_event(event_id="a"))
    profiles.absorb(3, make_event(event_id="c"))
    profiles.absorb(3, make_event(event_id="d"))

    assert profiles.absorb(3, make_event(event_id="a"))
    profile = profiles.profile(3, "17850")
    assert profile is not None and list(profile.recent_event_ids) == ["d", "a"]


def test_a_frequent_description_word_outlasts_rare_ones_in_a_bounded_vocabulary(
    make_event: EventFactory,
) -> None:
    profiles = store(terms=3)
    descriptions = ["RED HEART", "RED LANTERN", "RED", "BLUE MUG"]
    for number, description in enumerate(descriptions):
        profiles.absorb(
            3, make_event(event_id=str(number), item_description=description)
        )

    (change,) = profiles.changes()
    terms = [(t.term, t.count) for t in UserProfile.FromString(change.value).top_terms]
    assert terms == [("red", 3), ("blue", 2), ("mug", 2)]


def test_restoring_the_changelog_gives_back_the_committed_checkpoint(
    make_event: EventFactory,
) -> None:
    profiles = store()
    records = []
    for batch in (["a", "b"], ["c"], ["d", "e"]):
        for number, event_id in enumerate(batch):
            shopper = "17850" if number % 2 == 0 else ""
            profiles.absorb(
                3, make_event(event_id=event_id, user_id=shopper, session_id="9")
            )
        records += committed(profiles)

    again = restored(records)

    assert again.checkpoint() == profiles.checkpoint(3)
    assert again.checkpoint().profiles == 2
    assert set(again.shoppers) == {"17850", "session:9"}


def test_a_rolled_back_batch_leaves_profiles_and_checkpoint_as_before(
    make_event: EventFactory,
) -> None:
    profiles = store()
    profiles.absorb(3, make_event(event_id="a"))
    records = committed(profiles)
    before = profiles.checkpoint(3)

    profiles.absorb(3, make_event(event_id="b"))
    profiles.absorb(3, make_event(event_id="c", user_id="12583"))
    profiles.changes()
    profiles.rollback()

    assert profiles.checkpoint(3) == before == restored(records).checkpoint()
    assert profiles.profile(3, "12583") is None
    assert profiles.absorb(3, make_event(event_id="b"))


def test_a_pending_checkpoint_counts_the_batch_before_it_commits(
    make_event: EventFactory,
) -> None:
    profiles = store()
    profiles.absorb(3, make_event(event_id="a"))

    records = [(c.partition, c.key, c.value) for c in profiles.changes()]

    assert profiles.checkpoint(3) == restored(records).checkpoint()
    assert profiles.checkpoint(3) != Checkpoint(profiles=0, digest=0)


def test_a_checkpoint_reads_back_from_offset_metadata_and_garbage_reads_as_none() -> (
    None
):
    checkpoint = Checkpoint(profiles=12, digest=0xDEADBEEF)

    assert Checkpoint.decode(checkpoint.encode()) == checkpoint
    assert Checkpoint.decode("") is None
    assert Checkpoint.decode("profiles/1 count=x digest=1") is None
    assert Checkpoint.decode("something else") is None
