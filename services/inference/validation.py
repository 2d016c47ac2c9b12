"""What a well-formed storefront request is; anything else is refused by name.

Every refusal is an :class:`InvalidRequestError` whose message says which
field is wrong and what was expected, for the storefront's developers.
"""

from __future__ import annotations

from collections.abc import Collection

from google.protobuf import unknown_fields
from google.protobuf.message import Message
from recops.v1 import storefront_pb2

from inference.errors import InvalidRequestError

MIN_K = 1
MAX_K = 100
MAX_ID_CHARS = 128
MAX_EXCLUDED_ITEMS = 1000
MAX_QUERY_CHARS = 512


def check_recommend_request(request: storefront_pb2.RecommendRequest) -> None:
    """Refuse a Recommend request that breaks the API's rules."""
    check_known_fields(request)
    check_recommend(request.user_id, request.k, request.exclude)


def check_recommend(user_id: str, k: int, exclude: Collection[str]) -> None:
    """Refuse a shopper, list length or exclusion list the API does not allow."""
    check_id("user_id", user_id)
    check_k(k)
    if len(exclude) > MAX_EXCLUDED_ITEMS:
        raise InvalidRequestError(
            f"exclude may list at most {MAX_EXCLUDED_ITEMS} items, got {len(exclude)}"
        )
    for position, item_id in enumerate(exclude):
        check_id(f"exclude[{position}]", item_id)


def check_search(request: storefront_pb2.SearchRequest) -> None:
    """Refuse a Search request that breaks the API's rules."""
    check_known_fields(request)
    if not request.query.strip():
        raise InvalidRequestError("query must not be empty")
    if len(request.query) > MAX_QUERY_CHARS:
        raise InvalidRequestError(
            f"query may be at most {MAX_QUERY_CHARS} characters, "
            f"got {len(request.query)}"
        )
    if request.user_id:  # a guest searches without one
        check_id("user_id", request.user_id)
    check_k(request.k)


def check_id(name: str, value: str) -> None:
    """Refuse an empty or overlong identifier."""
    if not value.strip():
        raise InvalidRequestError(f"{name} must not be empty")
    if len(value) > MAX_ID_CHARS:
        raise InvalidRequestError(
            f"{name} may be at most {MAX_ID_CHARS} characters, got {len(value)}"
        )


def check_k(k: int) -> None:
    """Refuse a list length outside what the API allows."""
    if not MIN_K <= k <= MAX_K:
        raise InvalidRequestError(f"k must be between {MIN_K} and {MAX_K}, got {k}")


def check_known_fields(request: Message) -> None:
    """Refuse fields this server's contract does not have.

    A client built from a newer contract would otherwise have a field it
    relies on silently ignored.
    """
    unknown = unknown_fields.UnknownFieldSet(request)
    numbers = sorted({field.field_number for field in unknown})
    if numbers:
        listed = ", ".join(map(str, numbers))
        raise InvalidRequestError(
            f"{request.DESCRIPTOR.name} has fields this server does not know: "
            f"numbers {listed}"
        )
