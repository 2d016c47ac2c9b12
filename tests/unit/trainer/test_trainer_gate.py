import logging
import math

import pytest
import torch

from eventbus import KafkaSettings
from eventbus.contracts import Alert, AlertSeverity, AlertState
from trainer.errors import PublishError
from trainer.gate import GateDecision, check_finite, decide
from trainer.publish import (
    REFUSAL_RULE,
    KafkaAlertPublisher,
    refusal_alert,
    report_refusal,
)

METRIC = "ndcg@10"


def test_finite_scores_pass_and_the_others_are_counted() -> None:
    scores = torch.randn(4, 10)
    broken = scores.clone()
    broken[0, 3] = float("nan")
    broken[2, 1] = float("inf")
    broken[3, 0] = float("-inf")

    assert check_finite(scores) is None
    assert check_finite(broken) == (
        "3 of 40 validation scores are not finite (1 NaN, 2 infinite)"
    )


def test_a_candidate_is_accepted_when_nothing_serves_yet() -> None:
    decision = decide(
        candidate_metrics={METRIC: 0.01},
        serving_metrics=None,
        metric=METRIC,
        tolerance=0.02,
    )

    assert decision.accepted
    assert decision.reasons == ()
    assert decision.threshold is None


@pytest.mark.parametrize("tolerance", [0.0, 0.02, 0.1])
def test_the_tolerance_is_a_fraction_of_the_serving_value(tolerance: float) -> None:
    serving = 0.1437
    threshold = serving * (1 - tolerance)

    def verdict(candidate: float) -> bool:
        return decide(
            candidate_metrics={METRIC: candidate},
            serving_metrics={METRIC: serving},
            metric=METRIC,
            tolerance=tolerance,
        ).accepted

    assert verdict(threshold + 1e-9)
    assert not verdict(threshold - 1e-9)
    assert verdict(serving * 1.5)


def test_a_worse_candidate_is_refused_with_both_values_in_the_reason() -> None:
    decision = decide(
        candidate_metrics={METRIC: 0.12},
        serving_metrics={METRIC: 0.15},
        metric=METRIC,
        tolerance=0.02,
        serving_version="v-serving",
    )

    assert not decision.accepted
    assert (decision.candidate_value, decision.serving_value) == (0.12, 0.15)
    assert decision.threshold == pytest.approx(0.15 * 0.98)
    [reason] = decision.reasons
    assert "0.1200" in reason and "0.1500" in reason and "v-serving" in reason


def test_non_finite_validation_scores_refuse_even_a_better_candidate() -> None:
    problem = check_finite(torch.tensor([[0.5, float("nan")]]))
    assert problem is not None

    decision = decide(
        candidate_metrics={METRIC: 0.3},
        serving_metrics={METRIC: 0.1},
        metric=METRIC,
        tolerance=0.02,
        score_problems=[problem],
    )

    assert not decision.accepted
    assert decision.reasons == (problem,)


@pytest.mark.parametrize(
    ("candidate", "serving"),
    [
        ({}, {METRIC: 0.1}),
        ({METRIC: math.nan}, {METRIC: 0.1}),
        ({METRIC: 0.2}, {"recall@10": 0.1}),
        ({METRIC: 0.2}, {METRIC: math.inf}),
    ],
)
def test_a_gate_metric_that_is_missing_or_not_finite_refuses(
    candidate: dict[str, float], serving: dict[str, float]
) -> None:
    decision = decide(
        candidate_metrics=candidate,
        serving_metrics=serving,
        metric=METRIC,
        tolerance=0.02,
    )

    assert not decision.accepted
    assert METRIC in decision.reasons[0]


def refused() -> GateDecision:
    return decide(
        candidate_metrics={METRIC: 0.11},
        serving_metrics={METRIC: 0.14},
        metric=METRIC,
        tolerance=0.05,
        serving_version="20261201T000000Z-00000001",
    )


def test_the_refusal_alert_names_the_version_both_values_and_the_reasons() -> None:
    decision = refused()

    alert = refusal_alert(decision, model_name="rec", version="v2")

    assert alert.rule == REFUSAL_RULE
    assert alert.state == AlertState.ALERT_STATE_FIRING
    assert alert.severity == AlertSeverity.ALERT_SEVERITY_WARNING
    assert (alert.value, alert.threshold) == (0.11, decision.threshold)
    assert alert.labels["model_version"] == "v2"
    assert alert.labels["serving_version"] == "20261201T000000Z-00000001"
    assert "0.1100" in alert.summary and "0.1400" in alert.summary
    assert decision.reasons[0] in alert.summary
    assert (
        alert.alert_id
        == refusal_alert(decision, model_name="rec", version="v2").alert_id
    )


class RecordingPublisher:
    def __init__(self) -> None:
        self.alerts: list[Alert] = []

    def publish(self, alert: Alert) -> None:
        self.alerts.append(alert)


def test_a_refusal_is_logged_and_published(caplog: pytest.LogCaptureFixture) -> None:
    publisher = RecordingPublisher()

    with caplog.at_level(logging.ERROR, logger="trainer.publish"):
        alert = report_refusal(refused(), publisher, model_name="rec", version="v2")

    assert publisher.alerts == [alert]
    [record] = caplog.records
    assert record.levelno == logging.ERROR
    assert record.__dict__["model_version"] == "v2"


class SilentProducer:
    """A producer whose records are never acknowledged."""

    def __init__(self, config: dict[str, object]) -> None:
        self.config = config

    def produce(self, topic: str, **record: object) -> None:
        self.topic = topic

    def flush(self, timeout: float) -> int:
        return 1


def test_an_unacknowledged_alert_raises_a_retriable_publish_error() -> None:
    producers: list[SilentProducer] = []

    def factory(config: dict[str, object]) -> SilentProducer:
        producers.append(SilentProducer(config))
        return producers[-1]

    publisher = KafkaAlertPublisher(
        KafkaSettings(topic_prefix="t."),
        timeout_seconds=0.1,
        producer_factory=factory,  # type: ignore[arg-type]
    )

    with pytest.raises(PublishError) as raised:
        publisher.publish(refusal_alert(refused(), model_name="rec", version="v2"))

    assert raised.value.retriable
    assert producers[0].topic == "t.alerts"
    assert producers[0].config["acks"] == "all"
    assert producers[0].config["enable.idempotence"] is True
