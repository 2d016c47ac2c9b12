from datetime import UTC, datetime

from prometheus_client import CollectorRegistry

from eventbus.contracts import Alert, AlertState
from monitor.errors import LagReadError, PublishError
from monitor.lag import ConsumerLag
from monitor.metrics import MonitorMetrics
from monitor.rules import RuleState, ThresholdRule
from monitor.watcher import LagWatcher

GROUP = "recops-ingest"
TOPIC = "t.behaviour-events"


class ScriptedLag:
    """Answers with the next scripted total lag; None stands for a failed read."""

    group = GROUP
    topic = TOPIC

    def __init__(self, totals: list[int | None]) -> None:
        self.totals = list(totals)

    def read_lag(self) -> ConsumerLag:
        total = self.totals.pop(0)
        if total is None:
            raise LagReadError("the cluster did not answer")
        return ConsumerLag(group=GROUP, topic=TOPIC, partitions={0: total})


class RecordingPublisher:
    def __init__(self, failures: int = 0) -> None:
        self.failures = failures
        self.published: list[Alert] = []

    def publish(self, alert: Alert) -> None:
        if self.failures:
            self.failures -= 1
            raise PublishError("not acknowledged")
        self.published.append(alert)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def watcher_over(
    totals: list[int | None], publisher: RecordingPublisher
) -> tuple[LagWatcher, Clock, CollectorRegistry]:
    registry = CollectorRegistry()
    clock = Clock()
    watcher = LagWatcher(
        lag_source=ScriptedLag(totals),
        publisher=publisher,
        rule=ThresholdRule(name="ConsumerLagHigh", threshold=1000, for_seconds=5),
        metrics=MonitorMetrics(registry),
        clock=clock,
        wall_clock=lambda: datetime(2026, 12, 3, 19, 0, tzinfo=UTC),
    )
    return watcher, clock, registry


def evaluate_each_second(watcher: LagWatcher, clock: Clock, times: int) -> None:
    for _ in range(times):
        watcher.evaluate()
        clock.now += 1.0


def test_lag_held_high_then_cleared_publishes_one_firing_and_one_resolved() -> None:
    publisher = RecordingPublisher()
    watcher, clock, _ = watcher_over([5000] * 10 + [0] * 3, publisher)

    evaluate_each_second(watcher, clock, 13)

    states = [alert.state for alert in publisher.published]
    assert states == [AlertState.ALERT_STATE_FIRING, AlertState.ALERT_STATE_RESOLVED]
    firing = publisher.published[0]
    assert firing.rule == "ConsumerLagHigh"
    assert dict(firing.labels) == {"group": GROUP, "topic": TOPIC}
    assert (firing.value, firing.threshold) == (5000, 1000)
    assert firing.at.seconds == int(
        datetime(2026, 12, 3, 19, 0, tzinfo=UTC).timestamp()
    )


def test_a_failed_lag_read_keeps_the_firing_state_instead_of_resolving() -> None:
    publisher = RecordingPublisher()
    watcher, clock, registry = watcher_over([5000] * 6 + [None] * 3, publisher)

    evaluate_each_second(watcher, clock, 9)

    assert watcher.state is RuleState.FIRING
    assert [a.state for a in publisher.published] == [AlertState.ALERT_STATE_FIRING]
    errors = registry.get_sample_value(
        "recops_monitor_evaluation_errors_total",
        {"rule": "ConsumerLagHigh", "reason": "lag_read"},
    )
    assert errors == 3


def test_failed_reads_while_pending_do_not_reset_the_for_period() -> None:
    publisher = RecordingPublisher()
    watcher, clock, _ = watcher_over([5000, None, None, None, None, 5000], publisher)

    evaluate_each_second(watcher, clock, 6)

    assert watcher.state is RuleState.FIRING
    assert len(publisher.published) == 1


def test_an_unacknowledged_alert_is_sent_again_on_the_next_evaluation() -> None:
    publisher = RecordingPublisher(failures=2)
    watcher, clock, registry = watcher_over([5000] * 9, publisher)

    evaluate_each_second(watcher, clock, 9)

    assert len(publisher.published) == 1
    published = registry.get_sample_value(
        "recops_monitor_alerts_published_total",
        {"rule": "ConsumerLagHigh", "state": "firing"},
    )
    assert published == 1


def test_lag_is_exposed_per_partition_and_per_group() -> None:
    watcher, clock, registry = watcher_over([1234], RecordingPublisher())

    evaluate_each_second(watcher, clock, 1)

    labels = {"group": GROUP, "topic": TOPIC}
    assert (
        registry.get_sample_value(
            "recops_monitor_consumer_lag_events", {**labels, "partition": "0"}
        )
        == 1234
    )
    assert (
        registry.get_sample_value("recops_monitor_consumer_group_lag_events", labels)
        == 1234
    )
