import pytest
from recops.v1 import storefront_pb2

from inference.errors import InvalidRequestError
from inference.validation import (
    MAX_EXCLUDED_ITEMS,
    MAX_ID_CHARS,
    MAX_QUERY_CHARS,
    check_recommend_request,
    check_search,
)


def recommend(**fields: object) -> storefront_pb2.RecommendRequest:
    return storefront_pb2.RecommendRequest(**{"user_id": "17850", "k": 10, **fields})


def search(**fields: object) -> storefront_pb2.SearchRequest:
    return storefront_pb2.SearchRequest(**{"query": "lantern", "k": 10, **fields})


@pytest.mark.parametrize(
    ("request_fields", "message"),
    [
        ({"user_id": ""}, "user_id must not be empty"),
        ({"user_id": "  "}, "user_id must not be empty"),
        (
            {"user_id": "1" * (MAX_ID_CHARS + 1)},
            f"user_id may be at most {MAX_ID_CHARS} characters, got 129",
        ),
        ({"k": 0}, "k must be between 1 and 100, got 0"),
        ({"k": -3}, "k must be between 1 and 100, got -3"),
        ({"k": 101}, "k must be between 1 and 100, got 101"),
        ({"exclude": ["85123A", ""]}, r"exclude\[1\] must not be empty"),
        (
            {"exclude": ["x" * (MAX_ID_CHARS + 1)]},
            r"exclude\[0\] may be at most 128 characters",
        ),
        (
            {"exclude": [f"2{n:05d}" for n in range(MAX_EXCLUDED_ITEMS + 1)]},
            "exclude may list at most 1000 items, got 1001",
        ),
    ],
)
def test_a_malformed_recommend_request_is_refused_saying_what_is_wrong(
    request_fields: dict[str, object], message: str
) -> None:
    with pytest.raises(InvalidRequestError, match=message):
        check_recommend_request(recommend(**request_fields))


@pytest.mark.parametrize(
    "request_fields",
    [
        {},
        {"k": 1},
        {"k": 100},
        {"user_id": "1" * MAX_ID_CHARS},
        {"exclude": [f"2{n:05d}" for n in range(MAX_EXCLUDED_ITEMS)]},
    ],
)
def test_a_recommend_request_at_the_limits_is_accepted(
    request_fields: dict[str, object],
) -> None:
    check_recommend_request(recommend(**request_fields))


@pytest.mark.parametrize(
    ("request_fields", "message"),
    [
        ({"query": ""}, "query must not be empty"),
        ({"query": " \t"}, "query must not be empty"),
        (
            {"query": "q" * (MAX_QUERY_CHARS + 1)},
            f"query may be at most {MAX_QUERY_CHARS} characters, got 513",
        ),
        ({"k": 0}, "k must be between 1 and 100, got 0"),
        ({"user_id": " "}, "user_id must not be empty"),
    ],
)
def test_a_malformed_search_request_is_refused_saying_what_is_wrong(
    request_fields: dict[str, object], message: str
) -> None:
    with pytest.raises(InvalidRequestError, match=message):
        check_search(search(**request_fields))


def test_a_guest_may_search_without_a_user_id() -> None:
    check_search(search(query="q" * MAX_QUERY_CHARS))


def test_fields_the_contract_does_not_have_are_refused_by_number() -> None:
    request = storefront_pb2.RecommendRequest()
    # user_id "17850", k 10, then a varint field 5 and a bytes field 100.
    wire = recommend().SerializeToString() + bytes([0x28, 0x05, 0xA2, 0x06, 0x01, 0x41])
    request.ParseFromString(wire)

    with pytest.raises(InvalidRequestError) as refused:
        check_recommend_request(request)

    assert str(refused.value) == (
        "RecommendRequest has fields this server does not know: numbers 5, 100"
    )
