"""Whether the Kafka cluster is whole: every node up, every replica in sync."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Protocol

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from drill.errors import PreconditionError
from drill.faults import ClusterControl

if TYPE_CHECKING:  # where the library's own type hints take it from
    from confluent_kafka.admin._metadata import ClusterMetadata


class ClusterHealth(Protocol):
    """Says what keeps the cluster from being whole."""

    def fault(self) -> str | None:
        """What is wrong now, or None when the cluster is whole."""
        ...


class KafkaClusterHealth:
    """Checks the nodes' ports and the replicas of the drill's topics."""

    def __init__(
        self,
        *,
        cluster: ClusterControl,
        admin: AdminClient,
        topics: Sequence[str],
        timeout_seconds: float,
    ) -> None:
        self._cluster = cluster
        self._admin = admin
        self._topics = topics
        self._timeout_seconds = timeout_seconds

    def fault(self) -> str | None:
        nodes = self._cluster.listening_nodes()
        down = sorted(node for node, listening in nodes.items() if not listening)
        if down:
            return f"nodes {down} are not listening"
        try:
            metadata = self._admin.list_topics(timeout=self._timeout_seconds)
        except KafkaException as exc:
            return f"cluster metadata unavailable: {exc}"
        if len(metadata.brokers) < len(nodes):
            return f"{len(metadata.brokers)} of {len(nodes)} brokers registered"
        return self._replication_fault(metadata)

    def _replication_fault(self, metadata: ClusterMetadata) -> str | None:
        for name in self._topics:
            topic = metadata.topics.get(name)
            if topic is None or not topic.partitions:
                return f"topic {name} not found"
            lagging = [
                p.id for p in topic.partitions.values() if len(p.isrs) < len(p.replicas)
            ]
            if lagging:
                return f"{name} partitions {lagging} are under-replicated"
        return None


def wait_until_whole(
    health: ClusterHealth,
    *,
    timeout_seconds: float,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> float:
    """Wait for the cluster to be whole; return the seconds it took.

    Raises :class:`PreconditionError` with the last fault seen when it is not
    whole within ``timeout_seconds``.
    """
    started = clock()
    while (fault := health.fault()) is not None:
        if clock() - started >= timeout_seconds:
            raise PreconditionError(
                f"cluster not whole after {timeout_seconds:g}s: {fault}"
            )
        sleep(0.5)
    return clock() - started
