"""Whether ingest is live and ready, in words a probe and an operator read.

Live: the loop came round within ``liveness_seconds``; a loop wedged in a
call for longer than that needs a restart. Ready: the group assigned
partitions, each restored profile agrees with its checkpoint, and the loop
is not stalled, that is, it has not gone ``stall_seconds`` without committing
a batch while more than ``stall_lag_events`` events wait. A stall clears by
itself once a batch commits again.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable

from ingest.metrics import IngestMetrics
from ingest.settings import IngestSettings


class IngestHealth:
    """What the loop reports of itself, read from the endpoint's threads."""

    def __init__(
        self,
        settings: IngestSettings,
        metrics: IngestMetrics,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._settings = settings
        self._metrics = metrics
        self._clock = clock
        self._lock = threading.Lock()
        self._partitions: set[int] = set()
        self._refused: dict[int, str] = {}
        self._started = False
        self._stopped = False
        self._last_beat = clock()
        self._last_commit = clock()
        self._lag = 0

    def beat(self) -> None:
        """The loop came round."""
        self._last_beat = self._clock()
        self._publish()

    def assigned(self, partitions: Iterable[int]) -> None:
        with self._lock:
            self._started = True
            self._partitions.update(partitions)
            self._last_commit = self._clock()
        self._publish()

    def revoked(self, partitions: Iterable[int]) -> None:
        with self._lock:
            for partition in partitions:
                self._partitions.discard(partition)
                self._refused.pop(partition, None)
        self._publish()

    def refuse_partition(self, partition: int, problem: str) -> None:
        with self._lock:
            self._refused[partition] = problem
        self._publish()

    def committed(self) -> None:
        self._last_commit = self._clock()
        self._publish()

    def lag(self, events: int) -> None:
        self._lag = events
        self._metrics.consumer_lag.set(events)
        self._publish()

    def stopped(self) -> None:
        self._stopped = True
        self._publish()

    def partitions(self) -> list[int]:
        with self._lock:
            return sorted(self._partitions - set(self._refused))

    def live_problem(self) -> str | None:
        """Why the loop needs a restart, or None."""
        quiet = self._clock() - self._last_beat
        if quiet > self._settings.liveness_seconds:
            return f"the ingest loop has not come round for {quiet:.0f}s"
        return None

    def ready_problem(self) -> str | None:
        """Why the service should get no traffic now, or None."""
        with self._lock:
            refused = dict(self._refused)
            started = self._started
        if self._stopped:
            return "ingest is stopping"
        if not started:
            return "no partitions assigned yet"
        if refused:
            return "; ".join(
                f"partition {partition}: {problem}"
                for partition, problem in sorted(refused.items())
            )
        quiet = self._clock() - self._last_commit
        if quiet > self._settings.stall_seconds and (
            self._lag > self._settings.stall_lag_events
        ):
            return f"no batch committed for {quiet:.0f}s while {self._lag} events wait"
        return None

    def _publish(self) -> None:
        self._metrics.ready.set(0 if self.ready_problem() else 1)
        with self._lock:
            self._metrics.partitions_refused.set(len(self._refused))
