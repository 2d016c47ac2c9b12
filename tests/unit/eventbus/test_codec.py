import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from eventbus import ContentType, DecodeError, decode, encode
from eventbus.contracts import BehaviourEvent, BehaviourType


def purchase() -> BehaviourEvent:
    return BehaviourEvent(
        event_id="536365-1",
        type=BehaviourType.BEHAVIOUR_TYPE_PURCHASE,
        user_id="17850",
        item_id="85123A",
        quantity=6,
        price=2.55,
        event_time=Timestamp(seconds=1291191960),
        source="replay",
    )


@pytest.mark.parametrize("content_type", list(ContentType))
def test_an_event_survives_a_round_trip_in_either_encoding(
    content_type: ContentType,
) -> None:
    value, headers = encode(purchase(), content_type)

    assert decode(BehaviourEvent, value, headers) == purchase()


def test_a_record_without_content_type_is_read_as_protobuf() -> None:
    value, _ = encode(purchase())

    assert decode(BehaviourEvent, value, None).item_id == "85123A"


@pytest.mark.parametrize(
    ("value", "headers", "reason"),
    [
        (b"", None, "empty_payload"),
        (None, None, "empty_payload"),
        (b"\xff\xfe{", [("content-type", b"application/json")], "invalid_utf8"),
        (
            b'{"quantity": "many"}',
            [("content-type", b"application/json")],
            "invalid_json",
        ),
        (b"\x0a\x10abc", None, "invalid_protobuf"),
        (b"{}", [("content-type", b"text/csv")], "unknown_content_type"),
    ],
)
def test_a_bad_value_is_refused_with_a_reason(
    value: bytes | None, headers: list[tuple[str, bytes]] | None, reason: str
) -> None:
    with pytest.raises(DecodeError) as refused:
        decode(BehaviourEvent, value, headers)

    assert refused.value.reason == reason
