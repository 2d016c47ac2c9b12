"""The consumer lag watcher: read lag, judge it, announce changes."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime

from eventbus.contracts import Alert, AlertState
from monitor.alerts import AlertPublisher, build_alert
from monitor.errors import LagReadError, PublishError
from monitor.lag import ConsumerLag, LagSource
from monitor.metrics import MonitorMetrics
from monitor.rules import AlertChange, RuleState, ThresholdRule

logger = logging.getLogger(__name__)

CONSUMER_LAG_HIGH = "ConsumerLagHigh"


def _wall_clock() -> datetime:
    return datetime.now(UTC)


class LagWatcher:
    """Evaluates ``ConsumerLagHigh`` for one group on one topic.

    A lag that cannot be read is counted as an evaluation error and leaves
    the rule as it was: an unknown lag is never taken for zero. An alert the
    cluster did not acknowledge is kept and sent again on the next evaluation,
    before anything newer.
    """

    def __init__(
        self,
        *,
        lag_source: LagSource,
        publisher: AlertPublisher,
        rule: ThresholdRule,
        metrics: MonitorMetrics,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], datetime] = _wall_clock,
    ) -> None:
        self._lag_source = lag_source
        self._publisher = publisher
        self._rule = rule
        self._metrics = metrics
        self._clock = clock
        self._wall_clock = wall_clock
        self._unsent: list[Alert] = []

    @property
    def state(self) -> RuleState:
        """Where the rule stands after the last evaluation."""
        return self._rule.state

    def run(self, stop: threading.Event, *, interval_seconds: float) -> None:
        """Evaluate every ``interval_seconds`` until ``stop`` is set."""
        logger.info(
            "watching consumer lag",
            extra={"group": self._lag_source.group, "topic": self._lag_source.topic},
        )
        while not stop.is_set():
            started = self._clock()
            self.evaluate()
            elapsed = self._clock() - started
            stop.wait(max(0.0, interval_seconds - elapsed))

    def evaluate(self) -> None:
        """One evaluation: resend, read, judge, announce."""
        with self._metrics.evaluation_duration_seconds.labels(self._rule.name).time():
            self._send_unsent()
            lag = self._read_lag()
            if lag is None:
                return
            self._record(lag)
            change = self._rule.evaluate(lag.total_events, self._clock())
            if change is not None:
                self._unsent.append(self._alert(change, lag))
                self._send_unsent()

    def _read_lag(self) -> ConsumerLag | None:
        try:
            return self._lag_source.read_lag()
        except LagReadError as exc:
            self._metrics.evaluation_errors.labels(self._rule.name, "lag_read").inc()
            logger.warning(
                "consumer lag unknown, rule keeps its state: %s",
                exc,
                extra={
                    "group": self._lag_source.group,
                    "topic": self._lag_source.topic,
                },
            )
            return None

    def _record(self, lag: ConsumerLag) -> None:
        for partition, events in lag.partitions.items():
            self._metrics.consumer_lag_events.labels(
                lag.group, lag.topic, str(partition)
            ).set(events)
        self._metrics.consumer_group_lag_events.labels(lag.group, lag.topic).set(
            lag.total_events
        )

    def _alert(self, change: AlertChange, lag: ConsumerLag) -> Alert:
        firing = change is AlertChange.FIRING
        self._metrics.alert_firing.labels(self._rule.name).set(1 if firing else 0)
        if firing:
            summary = (
                f"consumer group {lag.group} is {lag.total_events} events behind "
                f"on {lag.topic}, above {self._rule.threshold:g} for at least "
                f"{self._rule.for_seconds:g}s"
            )
        else:
            summary = (
                f"consumer group {lag.group} is {lag.total_events} events behind "
                f"on {lag.topic}, back within {self._rule.threshold:g}"
            )
        return build_alert(
            rule=self._rule.name,
            change=change,
            value=lag.total_events,
            threshold=self._rule.threshold,
            labels={"group": lag.group, "topic": lag.topic},
            summary=summary,
            at=self._wall_clock(),
        )

    def _send_unsent(self) -> None:
        while self._unsent:
            alert = self._unsent[0]
            try:
                self._publisher.publish(alert)
            except PublishError as exc:
                self._metrics.evaluation_errors.labels(self._rule.name, "publish").inc()
                logger.warning("alert not published, will retry: %s", exc)
                return
            self._unsent.pop(0)
            firing = alert.state == AlertState.ALERT_STATE_FIRING
            state = "firing" if firing else "resolved"
            self._metrics.alerts_published.labels(alert.rule, state).inc()
