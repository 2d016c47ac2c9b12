"""What can go wrong in ingest, split by how a caller should react.

IngestError                 root; ``retriable`` says whether to try again
├── ConfigurationError      a setting is wrong: fix it and restart
├── BrokerError             the cluster did not answer in time: retry
├── TransactionFencedError  another instance took over our transactional id
├── ConsumerFencedError     the consumer failed for good, as when another
│                           replica runs under the same instance id
├── ProducerStuckError      a transaction call outlived its timeout by far; the
│                           producer is replaced and the batch read again
├── ShutdownDeadlineError   the batch in flight did not commit within the grace
│                           period; it is consumed again after a restart
└── SnapshotError           a snapshot could not be read or written
"""

from __future__ import annotations


class IngestError(Exception):
    """Root of every error the ingest service raises on purpose."""

    retriable: bool = False


class ConfigurationError(IngestError):
    """A setting is missing or out of range."""


class BrokerError(IngestError):
    """The cluster did not answer in time; trying again may succeed."""

    retriable = True


class TransactionFencedError(IngestError):
    """Another instance now owns this transactional id; this one must stop."""


class ConsumerFencedError(IngestError):
    """The consumer cannot go on; most often another replica took its instance id."""


class ProducerStuckError(IngestError):
    """A transaction call never returned; its producer is of no further use."""

    retriable = True


class ShutdownDeadlineError(IngestError):
    """Shutdown's grace period ran out before the batch in flight committed."""


class SnapshotError(IngestError):
    """The training snapshot could not be read from the topic or written."""
