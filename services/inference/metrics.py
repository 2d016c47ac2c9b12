"""The inference service's Prometheus metrics, registered on a registry passed in.

Times are in seconds; counters carry ``_total`` (added by the client library);
every label takes a bounded set of values: a gRPC method or status code, a
reason or source word, a model version.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info

LATENCY_BUCKETS_SECONDS = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
)

BATCH_SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


class InferenceMetrics:
    """Every metric the inference service exposes."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "recops_inference_requests",
            "gRPC requests answered, by method and status code.",
            ["method", "code"],
            registry=registry,
        )
        self.request_duration_seconds = Histogram(
            "recops_inference_request_duration_seconds",
            "Time from receiving a request to having its answer, by method.",
            ["method"],
            buckets=LATENCY_BUCKETS_SECONDS,
            registry=registry,
        )
        self.batch_size = Histogram(
            "recops_inference_batch_size",
            "Requests scored together in one call to the model.",
            buckets=BATCH_SIZE_BUCKETS,
            registry=registry,
        )
        self.queue_wait_seconds = Histogram(
            "recops_inference_queue_wait_seconds",
            "Time a request waited in the queue before its batch was scored.",
            buckets=LATENCY_BUCKETS_SECONDS,
            registry=registry,
        )
        self.batch_scoring_seconds = Histogram(
            "recops_inference_batch_scoring_seconds",
            "Time to rank one batch: the model's scores, fallbacks and top items.",
            buckets=LATENCY_BUCKETS_SECONDS,
            registry=registry,
        )
        self.queue_depth = Gauge(
            "recops_inference_queue_depth",
            "Requests waiting to join a batch.",
            registry=registry,
        )
        self.shed_requests = Counter(
            "recops_inference_shed_requests",
            "Requests refused at once because the queue was full.",
            registry=registry,
        )
        self.dropped_requests = Counter(
            "recops_inference_dropped_requests",
            "Queued requests given up before scoring, by why.",
            ["reason"],
            registry=registry,
        )
        self.serving_model = Info(
            "recops_inference_serving_model",
            "The model version in service and the previous one kept as fallback.",
            registry=registry,
        )
        self.answering = Gauge(
            "recops_inference_answering",
            "1 for what answers Recommend now (model, previous_model, popularity).",
            ["source"],
            registry=registry,
        )
        self.search_index_loaded = Gauge(
            "recops_inference_search_index_loaded",
            "1 while a product search index answers Search, else 0.",
            registry=registry,
        )
        self.model_loads = Counter(
            "recops_inference_model_loads",
            "Announced model versions tried, by outcome (loaded or why refused).",
            ["outcome"],
            registry=registry,
        )
        self.fallbacks = Counter(
            "recops_inference_fallbacks",
            "Recommend answers not from the current model, by why and from what.",
            ["reason", "answered_by"],
            registry=registry,
        )
        self.published_records = Counter(
            "recops_inference_published_records",
            "Records written to a topic, by topic and outcome (delivered, failed).",
            ["topic", "outcome"],
            registry=registry,
        )
        self.history_events = Counter(
            "recops_inference_history_events",
            "Ingested events read for purchase history, by outcome.",
            ["outcome"],
            registry=registry,
        )
        self.history_users = Gauge(
            "recops_inference_history_users",
            "Shoppers with at least one remembered purchase.",
            registry=registry,
        )
        self.serving_model.info(
            {"model_name": "", "version": "popularity", "previous_version": ""}
        )
