"""Event contracts and Kafka plumbing shared by every recops service.

The services share nothing else: each talks to the others only through the
topics named in :mod:`eventbus.topics`, carrying the messages of
``proto/recops/v1/events.proto``.
"""

from eventbus.codec import (
    CONTENT_TYPE_HEADER,
    ContentType,
    DecodeError,
    DecodeReason,
    decode,
    encode,
)
from eventbus.settings import KafkaSettings
from eventbus.topics import Topic, TopicSpec, ensure_topics

__all__ = [
    "CONTENT_TYPE_HEADER",
    "ContentType",
    "DecodeError",
    "DecodeReason",
    "KafkaSettings",
    "Topic",
    "TopicSpec",
    "decode",
    "encode",
    "ensure_topics",
]
