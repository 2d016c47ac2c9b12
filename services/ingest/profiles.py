"""Shopper profiles: what ingest knows of each shopper, and the resends it absorbs.

Every accepted event is folded into its shopper's profile: the latest items,
counts by event type, first and last seen, the words of the item
descriptions the shopper touched most, and the ids of the shopper's latest
events. An event whose id is among those is a resend and is absorbed.

Profiles live per raw partition, since all of a shopper's events arrive on
one. Each batch writes the profiles it changed to the compacted profiles
topic, on the raw partition's number, inside the batch's transaction: that
topic is the store's changelog. Beside each committed offset goes a
:class:`Checkpoint`, how many profiles the partition holds and a digest of
their records, so an instance taking a partition over can prove that what it
restored from the changelog is what its predecessor committed.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import hashlib
import operator
import re

from google.protobuf.timestamp_pb2 import Timestamp

from eventbus.contracts import BehaviourEvent, BehaviourType, TermCount, UserProfile
from eventbus.keys import shopper_key

DIGEST_MODULUS = 1 << 64
CHECKPOINT_FORMAT = "profiles/1"
_COUNT_THEN_WORD = operator.itemgetter(1, 0)
_WORD = re.compile(r"[a-z]{3,}")
_STOP_WORDS = frozenset({"and", "the", "with", "for", "set", "pack", "of"})
_TYPE_NAMES = {
    value: BehaviourType.Name(value).removeprefix("BEHAVIOUR_TYPE_").lower()
    for value in BehaviourType.values()
}


@dataclasses.dataclass(frozen=True, kw_only=True)
class ProfileLimits:
    """How much of each shopper's past a profile keeps.

    ``recent_event_ids`` is the deduplication window: a resend is absorbed
    while fewer than that many newer events of the same shopper came since.
    """

    recent_items: int = 50
    recent_event_ids: int = 5000
    terms: int = 20


@dataclasses.dataclass(frozen=True, slots=True)
class Checkpoint:
    """What one partition's profiles amount to, committed beside its offset."""

    profiles: int
    digest: int

    def encode(self) -> str:
        return f"{CHECKPOINT_FORMAT} count={self.profiles} digest={self.digest:016x}"

    @classmethod
    def decode(cls, text: str | None) -> Checkpoint | None:
        """The checkpoint in committed offset metadata; None when there is none."""
        if not text or not text.startswith(CHECKPOINT_FORMAT + " "):
            return None
        fields = dict(part.split("=", 1) for part in text.split()[1:] if "=" in part)
        try:
            return cls(profiles=int(fields["count"]), digest=int(fields["digest"], 16))
        except (KeyError, ValueError):
            return None


@dataclasses.dataclass(frozen=True, slots=True)
class ProfileChange:
    """A profile record to write to the changelog."""

    partition: int
    key: bytes
    value: bytes


class ShopperProfile:
    """One shopper's profile, kept as plain values and written as a UserProfile."""

    __slots__ = (
        "_counts",
        "_event_id_set",
        "_event_ids",
        "_first_seen",
        "_items",
        "_last_seen",
        "_terms",
        "_total",
        "key",
        "user_id",
    )

    def __init__(self, message: UserProfile) -> None:
        self.key = message.shopper_key
        self.user_id = message.user_id
        self._items = collections.deque(message.recent_items)
        self._event_ids = collections.deque(message.recent_event_ids)
        self._event_id_set = set(self._event_ids)
        self._counts = dict(message.event_counts)
        self._total = message.events_total
        self._first_seen = _instant(message, "first_seen")
        self._last_seen = _instant(message, "last_seen")
        self._terms = {entry.term: entry.count for entry in message.top_terms}

    def has_seen(self, event_id: str) -> bool:
        return event_id in self._event_id_set

    def absorb(self, event: BehaviourEvent, limits: ProfileLimits) -> None:
        """Fold in an event this profile has not seen."""
        self._event_ids.append(event.event_id)
        self._event_id_set.add(event.event_id)
        while len(self._event_ids) > limits.recent_event_ids:
            self._event_id_set.discard(self._event_ids.popleft())
        if event.item_id:
            self._items.append(event.item_id)
            while len(self._items) > limits.recent_items:
                self._items.popleft()
        type_name = _TYPE_NAMES.get(event.type, "unspecified")
        self._counts[type_name] = self._counts.get(type_name, 0) + 1
        self._total += 1
        if event.HasField("event_time"):
            at = (event.event_time.seconds, event.event_time.nanos)
            if self._first_seen is None or at < self._first_seen:
                self._first_seen = at
            if self._last_seen is None or at > self._last_seen:
                self._last_seen = at
        for term in _terms_of(event.item_description or event.query):
            self._count_term(term, limits.terms)

    @property
    def message(self) -> UserProfile:
        """The profile as the contract has it, terms most frequent first."""
        ranked = sorted(self._terms.items(), key=lambda entry: (-entry[1], entry[0]))
        profile = UserProfile(
            shopper_key=self.key,
            user_id=self.user_id,
            recent_items=self._items,
            event_counts=self._counts,
            events_total=self._total,
            top_terms=[TermCount(term=term, count=count) for term, count in ranked],
            recent_event_ids=self._event_ids,
        )
        if self._first_seen is not None:
            profile.first_seen.seconds, profile.first_seen.nanos = self._first_seen
        if self._last_seen is not None:
            profile.last_seen.seconds, profile.last_seen.nanos = self._last_seen
        return profile

    def serialise(self) -> bytes:
        """The record value."""
        value: bytes = self.message.SerializeToString(deterministic=True)
        return value

    def _count_term(self, term: str, capacity: int) -> None:
        """Count a word, Space-Saving style: a new word takes the rarest's place.

        It inherits the rarest's count, so counts are upper bounds and a
        word more frequent than one in ``capacity`` is never dropped.
        """
        terms = self._terms
        count = terms.get(term)
        if count is None and len(terms) >= capacity:
            rarest, count = min(terms.items(), key=_COUNT_THEN_WORD)
            del terms[rarest]
        terms[term] = (count or 0) + 1


class PartitionProfiles:
    """The profiles of the shoppers whose events one raw partition carries."""

    def __init__(self) -> None:
        self.shoppers: dict[str, ShopperProfile] = {}
        self.record_digests: dict[str, int] = {}
        self.digest = 0

    def checkpoint(self) -> Checkpoint:
        return Checkpoint(profiles=len(self.shoppers), digest=self.digest)

    def load(self, key: bytes, value: bytes | None) -> None:
        """Apply one changelog record: the last one of a key wins."""
        name = key.decode()
        self.digest = (self.digest - self.record_digests.pop(name, 0)) % DIGEST_MODULUS
        self.shoppers.pop(name, None)
        if value is None:
            return
        self.shoppers[name] = ShopperProfile(UserProfile.FromString(value))
        self.record_digests[name] = record_digest(key, value)
        self.digest = (self.digest + self.record_digests[name]) % DIGEST_MODULUS


class ProfileStore:
    """The profiles of every raw partition this instance owns, changed by batch.

    A batch folds events in with :meth:`absorb`, takes the records to write
    with :meth:`changes`, and ends with :meth:`commit` once its transaction
    committed, or :meth:`rollback` once it aborted, which puts back every
    profile the batch touched as it was.
    """

    def __init__(self, limits: ProfileLimits) -> None:
        self.limits = limits
        self._partitions: dict[int, PartitionProfiles] = {}
        self._before: dict[tuple[int, str], bytes | None] = {}
        self._pending: dict[tuple[int, str], int] = {}

    def owned(self) -> list[int]:
        return sorted(self._partitions)

    def adopt(self, partition: int, profiles: PartitionProfiles) -> None:
        """Take over a partition's restored profiles."""
        self._partitions[partition] = profiles

    def release(self, partition: int) -> None:
        """Forget a partition this instance no longer owns."""
        self._partitions.pop(partition, None)

    def profile(self, partition: int, key: str) -> UserProfile | None:
        shopper = self._partitions[partition].shoppers.get(key)
        return None if shopper is None else shopper.message

    def absorb(self, partition: int, event: BehaviourEvent) -> bool:
        """Fold an event into its shopper's profile; False for a resend."""
        shoppers = self._partitions[partition].shoppers
        key = shopper_key(event)
        shopper = shoppers.get(key)
        if shopper is not None and shopper.has_seen(event.event_id):
            return False
        if (partition, key) not in self._before:
            self._before[partition, key] = (
                None if shopper is None else shopper.serialise()
            )
        if shopper is None:
            shopper = shoppers[key] = ShopperProfile(
                UserProfile(shopper_key=key, user_id=event.user_id)
            )
        shopper.absorb(event, self.limits)
        return True

    def changes(self) -> list[ProfileChange]:
        """The profile records this batch changed, to write with it."""
        changes: list[ProfileChange] = []
        for partition, name in self._before:
            key = name.encode()
            value = self._partitions[partition].shoppers[name].serialise()
            changes.append(ProfileChange(partition=partition, key=key, value=value))
            self._pending[partition, name] = record_digest(key, value)
        return changes

    def checkpoint(self, partition: int) -> Checkpoint:
        """The partition's checkpoint once the batch's changes are committed."""
        profiles = self._partitions.get(partition)
        if profiles is None:
            return Checkpoint(profiles=0, digest=0)
        digest = profiles.digest
        for (changed, name), new in self._pending.items():
            if changed == partition:
                digest += new - profiles.record_digests.get(name, 0)
        return Checkpoint(
            profiles=len(profiles.shoppers), digest=digest % DIGEST_MODULUS
        )

    def commit(self) -> None:
        """The batch's transaction committed: its changes are now the state."""
        for partition in {partition for partition, _ in self._pending}:
            profiles = self._partitions[partition]
            profiles.digest = self.checkpoint(partition).digest
        for (partition, name), new in self._pending.items():
            self._partitions[partition].record_digests[name] = new
        self._forget_batch()

    def rollback(self) -> None:
        """The batch's transaction aborted: put its profiles back as they were."""
        for (partition, name), before in self._before.items():
            profiles = self._partitions.get(partition)
            if profiles is None:
                continue
            if before is None:
                profiles.shoppers.pop(name, None)
            else:
                message = UserProfile.FromString(before)
                profiles.shoppers[name] = ShopperProfile(message)
        self._forget_batch()

    def _forget_batch(self) -> None:
        self._before.clear()
        self._pending.clear()


def record_digest(key: bytes, value: bytes) -> int:
    """A 64-bit digest of one changelog record; a partition's is their sum."""
    hashed = hashlib.blake2b(key + b"\0" + value, digest_size=8).digest()
    return int.from_bytes(hashed, "big")


def _instant(profile: UserProfile, field: str) -> tuple[int, int] | None:
    """A timestamp field as (seconds, nanos), or None when it is unset."""
    if not profile.HasField(field):
        return None
    at: Timestamp = getattr(profile, field)
    return at.seconds, at.nanos


@functools.lru_cache(maxsize=65_536)
def _terms_of(text: str) -> tuple[str, ...]:
    """The words of a description or query; a shop has few distinct ones."""
    return tuple(
        word for word in _WORD.findall(text.lower()) if word not in _STOP_WORDS
    )
