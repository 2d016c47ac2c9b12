from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import Metric

from inference.metrics import InferenceMetrics

# Labels whose values come from small fixed sets (methods, status codes,
# reason words) or from the models loaded; never a shopper or a request.
BOUNDED_LABELS = {
    "method",
    "code",
    "reason",
    "answered_by",
    "source",
    "outcome",
    "topic",
    "model_name",
    "version",
    "previous_version",
}
UNITLESS_HISTOGRAMS = {"recops_inference_batch_size"}


def families() -> list[Metric]:
    registry = CollectorRegistry()
    metrics = InferenceMetrics(registry)
    # Give every labelled metric one child so its labels show in the samples.
    metrics.requests.labels("Recommend", "OK").inc()
    metrics.request_duration_seconds.labels("Recommend").observe(0.003)
    metrics.model_loads.labels("loaded").inc()
    metrics.fallbacks.labels("no_history", "popularity").inc()
    metrics.dropped_requests.labels("cancelled").inc()
    metrics.history_events.labels("recorded").inc()
    metrics.published_records.labels("alerts", "delivered").inc()
    metrics.answering.labels("model").set(1)
    return list(registry.collect())


def test_every_metric_is_the_services_own_with_bounded_labels() -> None:
    for family in families():
        assert family.name.startswith("recops_inference_")
        for sample in family.samples:
            assert set(sample.labels) - {"le"} <= BOUNDED_LABELS, sample


def test_only_counters_end_in_total_and_histograms_of_time_are_in_seconds() -> None:
    for family in families():
        names = {sample.name for sample in family.samples}
        if family.type == "counter":
            assert f"{family.name}_total" in names
        else:
            assert not any(name.endswith("_total") for name in names)
        if family.type == "histogram" and family.name not in UNITLESS_HISTOGRAMS:
            assert family.name.endswith("_seconds")


def test_the_metrics_the_operators_read_are_all_there() -> None:
    expected = {
        ("recops_inference_requests", "counter"),
        ("recops_inference_request_duration_seconds", "histogram"),
        ("recops_inference_batch_size", "histogram"),
        ("recops_inference_queue_wait_seconds", "histogram"),
        ("recops_inference_batch_scoring_seconds", "histogram"),
        ("recops_inference_queue_depth", "gauge"),
        ("recops_inference_serving_model", "info"),
        ("recops_inference_answering", "gauge"),
        ("recops_inference_fallbacks", "counter"),
        ("recops_inference_shed_requests", "counter"),
        ("recops_inference_dropped_requests", "counter"),
        ("recops_inference_published_records", "counter"),
    }

    assert expected <= {(family.name, family.type) for family in families()}
