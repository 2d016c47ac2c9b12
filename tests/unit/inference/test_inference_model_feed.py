import pytest
import torch
from inference_fakes import ArtifactMaker, FakeRecord, announced, count, serving_model
from prometheus_client import CollectorRegistry

from eventbus.contracts import ModelReady
from inference.artifact import artifact_path, load_model
from inference.errors import ArtifactRejectedError, RejectionReason
from inference.metrics import InferenceMetrics
from inference.model import ModelHolder, ServingModel
from inference.model_feed import ModelFeed

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
    loader: FakeLoader | None, metrics: InferenceMetrics, holder: ModelHolder
) -> ModelFeed:
    return ModelFeed(
        holder=holder,
        loader=loader if loader is not None else FakeLoader(),
        metrics=metrics,
        model_name=NAME,
    )


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
    feed = ModelFeed(
        holder=holder, loader=crashing_loader, metrics=metrics, model_name=NAME
    )

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
    holder = ModelHolder()
    feed = ModelFeed(
        holder=holder,
        loader=lambda ready: load_model(ready, torch.device("cpu")),
        metrics=metrics,
        model_name=NAME,
    )

    feed.handle([announced(good, 0)])
    feed.handle([announced(bad, 1)])

    assert serving_version(holder) == good.version
    refused = sum(
        count(registry, "recops_inference_model_loads_total", outcome=reason.value)
        for reason in RejectionReason
    )
    assert refused == 1


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

    feed = ModelFeed(holder=holder, loader=loader, metrics=metrics, model_name=NAME)

    feed.handle(announcements("v2"))
    feed.handle(announcements("v2"))

    assert attempts == ["v2", "v2"]
    assert serving_version(holder) == "v2"
