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


JSON = [("content-type", b"application/json")]


@pytest.mark.parametrize(
    ("value", "headers", "reason"),
    [
        (b"", None, "empty_payload"),
        (None, None, "empty_payload"),
        (b"\xff\xfe{", [("content-type", b"application/json")], "invalid_utf8"),
        (b'{"eventId": "a"', JSON, "invalid_json"),
        (b'{"eventId": ' + b"[" * 5000 + b"]" * 5000 + b"}", JSON, "invalid_json"),
        (b'{"quantity": "many"}', JSON, "wrong_field_type"),
        (b'{"eventId": 5}', JSON, "wrong_field_type"),
        (b'{"eventTime": 1291191960}', JSON, "wrong_field_type"),
        (b'["536365-1"]', JSON, "wrong_field_type"),
        (b'{"basket": []}', JSON, "unknown_field"),
        (b'{"type": "BEHAVIOUR_TYPE_TELEPORT"}', JSON, "unknown_enum_value"),
        (b"\x0a\x10abc", None, "invalid_protobuf"),
        (b"\x08\x05", None, "wrong_field_type"),
        (b"{}", [("content-type", b"text/csv")], "unknown_content_type"),
    ],
)
def test_a_bad_value_is_refused_with_a_reason(
    value: bytes | None, headers: list[tuple[str, bytes]] | None, reason: str
) -> None:
    with pytest.raises(DecodeError) as refused:
        decode(BehaviourEvent, value, headers)

    assert refused.value.reason == reason


def test_a_field_number_the_contract_does_not_declare_is_kept_not_refused() -> None:
    newer_contract_field = b"\xa8\x06\x01"  # field 101, varint 1
    value = purchase().SerializeToString() + newer_contract_field

    decoded = decode(BehaviourEvent, value, None)

    assert decoded.event_id == "536365-1"
    assert decoded.SerializeToString() == value


def test_a_content_type_with_parameters_is_read_by_its_media_type() -> None:
    value, _ = encode(purchase(), ContentType.JSON)
    headers = [("Content-Type", b"application/json; charset=utf-8")]

    assert decode(BehaviourEvent, value, headers) == purchase()


def test_json_sent_without_its_header_is_refused_with_a_hint() -> None:
    value, _ = encode(purchase(), ContentType.JSON)

    with pytest.raises(DecodeError) as refused:
        decode(BehaviourEvent, value, None)

    assert refused.value.reason == "invalid_protobuf"
    assert "content-type: application/json" in refused.value.detail
