"""Turn contract messages into Kafka record values and back.

A record says how its value is encoded in the ``content-type`` header:
protobuf binary (the default when the header is absent) or the protobuf JSON
mapping. Both are checked against the same message type.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from typing import TypeVar

from google.protobuf import json_format
from google.protobuf.message import DecodeError as ProtobufDecodeError
from google.protobuf.message import Message

CONTENT_TYPE_HEADER = "content-type"

M = TypeVar("M", bound=Message)
Headers = Sequence[tuple[str, bytes | str | None]]


class ContentType(enum.StrEnum):
    """How a record value is encoded."""

    PROTOBUF = "application/x-protobuf"
    JSON = "application/json"


class DecodeError(ValueError):
    """A record value does not hold the expected message.

    ``reason`` is a short machine-readable word for dead-letter records.
    """

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def encode(
    message: Message, content_type: ContentType = ContentType.PROTOBUF
) -> tuple[bytes, list[tuple[str, bytes]]]:
    """Serialise a message and the header that says how."""
    if content_type is ContentType.JSON:
        value = json_format.MessageToJson(message, indent=None).encode()
    else:
        value = message.SerializeToString()
    return value, [(CONTENT_TYPE_HEADER, content_type.value.encode())]


def content_type_of(headers: Headers | None) -> ContentType:
    """The content type a record's headers declare; protobuf when none."""
    for key, raw in headers or ():
        if key.lower() != CONTENT_TYPE_HEADER or raw is None:
            continue
        text = raw.decode("ascii", "replace") if isinstance(raw, bytes) else raw
        try:
            return ContentType(text.strip().lower())
        except ValueError:
            raise DecodeError("unknown_content_type", text) from None
    return ContentType.PROTOBUF


def decode(message_type: type[M], value: bytes | None, headers: Headers | None) -> M:
    """Parse a record value into ``message_type`` or raise :class:`DecodeError`."""
    if not value:
        raise DecodeError("empty_payload", "the record has no value")
    content_type = content_type_of(headers)

    message: M = message_type()
    if content_type is ContentType.JSON:
        try:
            text = value.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise DecodeError("invalid_utf8", str(exc)) from None
        try:
            json_format.Parse(text, message)
        except json_format.ParseError as exc:
            raise DecodeError("invalid_json", str(exc)) from None
        return message

    try:
        message.ParseFromString(value)
    except ProtobufDecodeError as exc:
        raise DecodeError("invalid_protobuf", str(exc) or "truncated") from None
    return message
