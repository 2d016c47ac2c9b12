"""Turn contract messages into Kafka record values and back.

A record says how its value is encoded in the ``content-type`` header:
protobuf binary (the default when the header is absent) or the protobuf JSON
mapping. Both are checked against the same message type, and a value that
does not fit it is refused with one of the :class:`DecodeReason` words.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Sequence
from typing import TypeVar

from google.protobuf import json_format, unknown_fields
from google.protobuf.message import DecodeError as ProtobufDecodeError
from google.protobuf.message import Message

CONTENT_TYPE_HEADER = "content-type"

M = TypeVar("M", bound=Message)
Headers = Sequence[tuple[str, bytes | str | None]]


class ContentType(enum.StrEnum):
    """How a record value is encoded."""

    PROTOBUF = "application/x-protobuf"
    JSON = "application/json"


class DecodeReason(enum.StrEnum):
    """Why a record value does not hold the expected message."""

    EMPTY_PAYLOAD = "empty_payload"
    UNKNOWN_CONTENT_TYPE = "unknown_content_type"
    INVALID_UTF8 = "invalid_utf8"
    INVALID_JSON = "invalid_json"
    INVALID_PROTOBUF = "invalid_protobuf"
    WRONG_FIELD_TYPE = "wrong_field_type"
    UNKNOWN_FIELD = "unknown_field"
    UNKNOWN_ENUM_VALUE = "unknown_enum_value"


class DecodeError(ValueError):
    """A record value does not hold the expected message.

    ``reason`` is a short machine-readable word for dead-letter records.
    """

    def __init__(self, reason: DecodeReason, detail: str) -> None:
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
        media_type = text.split(";", 1)[0]  # parameters such as charset
        try:
            return ContentType(media_type.strip().lower())
        except ValueError:
            raise DecodeError(DecodeReason.UNKNOWN_CONTENT_TYPE, text) from None
    return ContentType.PROTOBUF


def decode(message_type: type[M], value: bytes | None, headers: Headers | None) -> M:
    """Parse a record value into ``message_type`` or raise :class:`DecodeError`."""
    if not value:
        raise DecodeError(DecodeReason.EMPTY_PAYLOAD, "the record has no value")
    message: M = message_type()
    if content_type_of(headers) is ContentType.JSON:
        _parse_json(value, message)
    else:
        _parse_protobuf(value, message)
    return message


def _parse_json(value: bytes, message: Message) -> None:
    try:
        document = json.loads(value.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise DecodeError(DecodeReason.INVALID_UTF8, str(exc)) from None
    except json.JSONDecodeError as exc:
        raise DecodeError(DecodeReason.INVALID_JSON, str(exc)) from None
    except RecursionError:
        raise DecodeError(DecodeReason.INVALID_JSON, "nested too deeply") from None
    if not isinstance(document, dict):
        kind = type(document).__name__
        raise DecodeError(
            DecodeReason.WRONG_FIELD_TYPE, f"the value is a JSON {kind}, not an object"
        )
    try:
        json_format.ParseDict(document, message)
    except json_format.ParseError as exc:
        raise DecodeError(_json_reason(str(exc)), str(exc)) from None
    except RecursionError:
        raise DecodeError(
            DecodeReason.WRONG_FIELD_TYPE, "a field is nested too deeply"
        ) from None


def _json_reason(problem: str) -> DecodeReason:
    """The reason word for what json_format said was wrong."""
    if "has no field named" in problem:
        return DecodeReason.UNKNOWN_FIELD
    if "Invalid enum value" in problem:
        return DecodeReason.UNKNOWN_ENUM_VALUE
    return DecodeReason.WRONG_FIELD_TYPE


def _parse_protobuf(value: bytes, message: Message) -> None:
    """Parse binary protobuf; a declared field on the wrong wire type is refused.

    Fields the contract does not declare are kept, as protobuf keeps them,
    so a producer on a newer contract is still read.
    """
    try:
        message.ParseFromString(value)
    except ProtobufDecodeError as exc:
        detail = str(exc) or "truncated"
        if value.lstrip()[:1] in (b"{", b"["):
            detail += f"; it looks like JSON, which needs {CONTENT_TYPE_HEADER}:"
            detail += f" {ContentType.JSON.value}"
        raise DecodeError(DecodeReason.INVALID_PROTOBUF, detail) from None
    declared = message.DESCRIPTOR.fields_by_number
    for field in unknown_fields.UnknownFieldSet(message):
        if field.field_number in declared:
            name = declared[field.field_number].name
            raise DecodeError(
                DecodeReason.WRONG_FIELD_TYPE,
                f"field {name} arrived with wire type {field.wire_type}",
            )
