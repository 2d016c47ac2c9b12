import pytest
import torch
from inference_fakes import (
    ArtifactMaker,
    FakeRecord,
    FixedScores,
    RecordedPublisher,
    announced,
    count,
    serving_model,
)
from prometheus_client import CollectorRegistry

from eventbus.contracts import Alert, AlertState, ModelReady
from inference.artifact import artifact_path, load_model
from inference.errors import ArtifactRejectedError, RejectionReason
from inference.metrics import InferenceMetrics
from inference.model import ModelHolder, ServingModel
from inference.model_feed import REFUSAL_RULE, ModelFeed, ModelLoader

NAME = "sequential-recommender"


class FakeLoader:
    """Loads every version except those listed as bad; records what it tried."""

    def __init__(self, bad_versions: set[str] = frozenset()) -> None:
        self.bad_versions = bad_versions
        self.tried: list[str] = []

    def __call__(self, ready: ModelReady) -> ServingModel:
        self.tried.append(ready.version)
        if ready.version in self.bad_versions:
            raise ArtifactRejectedError(RejectionReason.CHECKSUM_MISMATCH, "flipped")
        return serving_model(
            [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0], version=ready.version
        )


def announcements(*versions: str, model_name: str = NAME) -> list[FakeRecord]:
    return [
        announced(ModelReady(model_name=model_name, version=v, sha256=v), n)
        for n, v in enumerate(versions)
    ]


def feed_with(
    loader: ModelLoader | None,
    metrics: InferenceMetrics,
    holder: ModelHolder,
    alerts: RecordedPublisher | None = None,
) -> ModelFeed:
    return ModelFeed(
        holder=holder,
        loader=loader if loader is not None else FakeLoader(),
        metrics=metrics,
        model_name=NAME,
        alerts=alerts if alerts is not None else RecordedPublisher(),
    )


def alerts_in(publisher: RecordedPublisher) -> list[Alert]:
    alerts = []
    for key, message in publisher.records:
        assert isinstance(message, Alert)
        assert key == message.rule
        alerts.append(message)
    return alerts


def serving_version(holder: ModelHolder) -> str | None:
    return holder.current.version if holder.current else None


def test_of_announcements_read_together_only_the_newest_is_loaded(
    metrics: InferenceMetrics,
) -> None:
    holder, loader = ModelHolder(), FakeLoader()
    feed = feed_with(loader, metrics, holder)

    feed.handle(announcements("v1", "v2", "v3"))

    assert serving_version(holder) == "v3"
    assert loader.tried == ["v3"]


def test_a_later_announcement_replaces_the_model_in_service(
    metrics: InferenceMetrics, registry: CollectorRegistry
) -> None:
    holder = ModelHolder()
    feed = feed_with(FakeLoader(), metrics, holder)

    feed.handle(announcements("v1"))
    feed.handle(announcements("v2"))

    assert serving_version(holder) == "v2"
    assert holder.previous is not None
    assert holder.previous.version == "v1"
    assert count(registry, "recops_inference_model_loads_total", outcome="loaded") == 2
    assert (
        count(
            registry,
            "recops_inference_serving_model_info",
            model_name=NAME,
            version="v2",
            previous_version="v1",
        )
        == 1
    )


def test_a_refused_newest_version_leaves_the_newest_good_one_serving(
    metrics: InferenceMetrics, registry: CollectorRegistry
) -> None:
    holder, loader = ModelHolder(), FakeLoader(bad_versions={"v3"})
    feed = feed_with(loader, metrics, holder)

    feed.handle(announcements("v1", "v2", "v3"))

    assert serving_version(holder) == "v2"
    assert loader.tried == ["v3", "v2"]
    outcome = RejectionReason.CHECKSUM_MISMATCH.value
    assert count(registry, "recops_inference_model_loads_total", outcome=outcome) == 1


def test_a_refused_later_version_keeps_the_current_model_serving(
    metrics: InferenceMetrics,
) -> None:
    holder = ModelHolder()
    feed = feed_with(FakeLoader(bad_versions={"v2"}), metrics, holder)

    feed.handle(announcements("v1"))
    feed.handle(announcements("v2"))

    assert serving_version(holder) == "v1"


def test_a_refused_version_is_not_tried_again(metrics: InferenceMetrics) -> None:
    holder, loader = ModelHolder(), FakeLoader(bad_versions={"v2"})
    feed = feed_with(loader, metrics, holder)

    feed.handle(announcements("v2"))
    feed.handle(announcements("v2"))

    assert loader.tried == ["v2"]
    assert holder.current is None


def test_announcing_the_version_in_service_again_loads_nothing(
    metrics: InferenceMetrics,
) -> None:
    holder, loader = ModelHolder(), FakeLoader()
    feed = feed_with(loader, metrics, holder)

    feed.handle(announcements("v1"))
    feed.handle(announcements("v1"))

    assert loader.tried == ["v1"]


def test_another_models_announcements_are_ignored(metrics: InferenceMetrics) -> None:
    holder, loader = ModelHolder(), FakeLoader()
    feed = feed_with(loader, metrics, holder)

    feed.handle(announcements("v9", model_name="search-ranker"))

    assert loader.tried == []
    assert holder.current is None


def test_an_undecodable_announcement_is_counted_and_skipped(
    metrics: InferenceMetrics, registry: CollectorRegistry
) -> None:
    holder = ModelHolder()
    feed = feed_with(FakeLoader(), metrics, holder)
    garbage = FakeRecord(b"\xff\xff\xff", [("content-type", b"application/x-protobuf")])

    feed.handle([*announcements("v1"), garbage])

    assert serving_version(holder) == "v1"
    assert (
        count(registry, "recops_inference_model_loads_total", outcome="undecodable")
        == 1
    )


def test_a_loader_that_crashes_is_counted_and_the_service_keeps_its_model(
    metrics: InferenceMetrics, registry: CollectorRegistry
) -> None:
    def crashing_loader(ready: ModelReady) -> ServingModel:
        raise MemoryError("out of memory while loading")

    holder = ModelHolder()
    feed_with(FakeLoader(), metrics, holder).handle(announcements("v1"))
    feed = feed_with(crashing_loader, metrics, holder)

    feed.handle(announcements("v2"))

    assert serving_version(holder) == "v1"
    assert (
        count(registry, "recops_inference_model_loads_total", outcome="load_error") == 1
    )


@pytest.mark.parametrize("damage", ["truncate", "flip", "delete"])
def test_a_damaged_artifact_on_disk_never_serves(
    make_artifact: ArtifactMaker,
    metrics: InferenceMetrics,
    registry: CollectorRegistry,
    damage: str,
) -> None:
    good = make_artifact("20261203T190102Z-00000001")
    bad = make_artifact("20261204T190102Z-00000002")
    path = artifact_path(bad.artifact_uri)
    data = path.read_bytes()
    if damage == "truncate":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "flip":
        path.write_bytes(data[:100] + bytes([data[100] ^ 1]) + data[101:])
    else:
        path.unlink()
    holder, alerts = ModelHolder(), RecordedPublisher()
    feed = feed_with(
        lambda ready: load_model(ready, torch.device("cpu")), metrics, holder, alerts
    )

    feed.handle([announced(good, 0)])
    feed.handle([announced(bad, 1)])

    assert serving_version(holder) == good.version
    refused = sum(
        count(registry, "recops_inference_model_loads_total", outcome=reason.value)
        for reason in RejectionReason
    )
    assert refused == 1
    [alert] = alerts_in(alerts)
    assert alert.labels["model_version"] == bad.version
    assert alert.labels["reason"] in {reason.value for reason in RejectionReason}


def test_a_version_whose_store_was_unreachable_is_tried_again(
    metrics: InferenceMetrics,
) -> None:
    holder = ModelHolder()
    attempts: list[str] = []

    def loader(ready: ModelReady) -> ServingModel:
        attempts.append(ready.version)
        if len(attempts) == 1:
            raise ArtifactRejectedError(
                RejectionReason.MISSING, "store unreachable", retriable=True
            )
        return FakeLoader()(ready)

    feed = feed_with(loader, metrics, holder)

    feed.handle(announcements("v2"))
    feed.handle(announcements("v2"))

    assert attempts == ["v2", "v2"]
    assert serving_version(holder) == "v2"


def test_a_refused_version_is_alerted_once_with_its_version_and_reason(
    metrics: InferenceMetrics,
) -> None:
    alerts = RecordedPublisher()
    feed = feed_with(FakeLoader(bad_versions={"v2"}), metrics, ModelHolder(), alerts)

    feed.handle(announcements("v2"))
    feed.handle(announcements("v2"))

    [alert] = alerts_in(alerts)
    assert alert.rule == REFUSAL_RULE
    assert alert.state == AlertState.ALERT_STATE_FIRING
    assert alert.alert_id == f"{REFUSAL_RULE}-{NAME}-v2"
    assert alert.labels["service"] == "inference"
    assert alert.labels["model_version"] == "v2"
    assert alert.labels["reason"] == RejectionReason.CHECKSUM_MISMATCH.value
    assert "v2" in alert.summary
    assert "flipped" in alert.summary


def test_each_refused_version_gets_its_own_alert(metrics: InferenceMetrics) -> None:
    alerts = RecordedPublisher()
    loader = FakeLoader(bad_versions={"v2", "v3"})
    feed = feed_with(loader, metrics, ModelHolder(), alerts)

    feed.handle(announcements("v1", "v2", "v3"))

    versions = [alert.labels["model_version"] for alert in alerts_in(alerts)]
    assert versions == ["v3", "v2"]


def test_a_loaded_version_raises_no_alert(metrics: InferenceMetrics) -> None:
    alerts = RecordedPublisher()
    feed = feed_with(FakeLoader(), metrics, ModelHolder(), alerts)

    feed.handle(announcements("v1", "v2"))

    assert alerts.records == []


def test_a_loader_that_crashes_is_alerted_as_a_load_error(
    metrics: InferenceMetrics,
) -> None:
    def crashing_loader(ready: ModelReady) -> ServingModel:
        raise MemoryError("out of memory while loading")

    alerts = RecordedPublisher()
    feed = feed_with(crashing_loader, metrics, ModelHolder(), alerts)

    feed.handle(announcements("v2"))

    [alert] = alerts_in(alerts)
    assert alert.labels["reason"] == "load_error"
    assert "out of memory" in alert.summary


def test_a_store_unreachable_twice_is_alerted_once(metrics: InferenceMetrics) -> None:
    def unreachable(ready: ModelReady) -> ServingModel:
        raise ArtifactRejectedError(
            RejectionReason.MISSING, "store unreachable", retriable=True
        )

    alerts = RecordedPublisher()
    feed = feed_with(unreachable, metrics, ModelHolder(), alerts)

    feed.handle(announcements("v2"))
    feed.handle(announcements("v2"))

    [alert] = alerts_in(alerts)
    assert alert.labels["reason"] == RejectionReason.MISSING.value


def test_an_artifact_that_fails_its_smoke_test_is_alerted(
    make_artifact: ArtifactMaker, metrics: InferenceMetrics
) -> None:
    nan_scores = FixedScores([float("nan")] * 8)
    bad = make_artifact("20261204T190102Z-00000002", module=nan_scores)
    holder, alerts = ModelHolder(), RecordedPublisher()
    feed = feed_with(
        lambda ready: load_model(ready, torch.device("cpu")), metrics, holder, alerts
    )

    feed.handle([announced(bad, 0)])

    assert holder.current is None
    [alert] = alerts_in(alerts)
    assert alert.labels["model_version"] == bad.version
    assert alert.labels["reason"] == RejectionReason.SMOKE_TEST_FAILED.value
