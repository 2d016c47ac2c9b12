import pytest

from eventbus.contracts import BehaviourEvent
from eventbus.keys import partition_for, shopper_key


def test_a_signed_in_shopper_is_keyed_by_user_and_a_guest_by_session() -> None:
    assert shopper_key(BehaviourEvent(user_id="17850", session_id="536365")) == "17850"
    assert shopper_key(BehaviourEvent(session_id="536365")) == "session:536365"
    assert shopper_key(BehaviourEvent()) == ""


def test_a_key_always_lands_on_the_same_partition_within_range() -> None:
    partitions = {partition_for(str(user).encode(), 6) for user in range(1000)}

    assert partitions == set(range(6))
    assert partition_for(b"17850", 6) == partition_for(b"17850", 6) == 3


def test_a_topic_without_partitions_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one partition"):
        partition_for(b"17850", 0)
