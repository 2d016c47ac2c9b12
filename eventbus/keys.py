"""How behaviour events are keyed, and which partition a key belongs to.

Every behaviour event is keyed by its shopper: the user id, or ``session:``
and the session id for a guest. Producers that use librdkafka's default
partitioner put all of a shopper's events on one partition, the one
:func:`partition_for` names; ingest keeps that shopper's profile on the same
partition of the profiles topic, and forwards an event that arrived anywhere
else to where it belongs.
"""

from __future__ import annotations

import zlib

from eventbus.contracts import BehaviourEvent

GUEST_PREFIX = "session:"


def shopper_key(event: BehaviourEvent) -> str:
    """The key of the shopper an event belongs to; empty when it names none."""
    if event.user_id:
        return event.user_id
    if event.session_id:
        return GUEST_PREFIX + event.session_id
    return ""


def partition_for(key: bytes, partitions: int) -> int:
    """The partition librdkafka's default partitioner picks for a key.

    That partitioner (``consistent_random``) takes the CRC-32 of the key
    modulo the partition count, as ``zlib.crc32`` computes it.
    """
    if partitions < 1:
        raise ValueError(f"a topic has at least one partition, not {partitions}")
    return zlib.crc32(key) % partitions
