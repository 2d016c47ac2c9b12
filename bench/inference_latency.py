"""Recommend latency against a running ``python -m inference``, end to end.

Builds a SASRec-sized artifact over the real catalogue (every product bought
in the retail data, ~4,000 stock codes, max_len 50), publishes the first
purchases of the retail data to INGESTED_EVENTS and the artifact's ModelReady
to MODEL_READY under ``RECOPS_TOPIC_PREFIX``, starts the service as its own
process, waits until it serves the new version, then times Recommend calls
through :class:`inference.client.StorefrontClient` and prints one JSON line.

    RECOPS_TOPIC_PREFIX=dev-inference. python bench/inference_latency.py
"""

from __future__ import annotations

import argparse
import collections
import csv
import gzip
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import warnings
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import grpc
import torch
from confluent_kafka import Producer

from eventbus import KafkaSettings, encode
from eventbus.contracts import BehaviourEvent, BehaviourType, ModelReady
from eventbus.topics import Topic
from inference.artifact import ArtifactMetadata, write_artifact
from inference.client import StorefrontClient

REPO = Path(__file__).resolve().parent.parent
TRANSACTIONS = REPO.parent / "shared" / "data" / "online-retail" / "transactions.csv.gz"
NON_PRODUCTS = {"POST", "DOT", "M", "C2", "D", "S", "BANK CHARGES", "AMAZONFEE", "CRUK"}


class SequentialRecommender(torch.nn.Module):
    """A two-layer self-attentive next-item model, untrained, at serving size."""

    def __init__(self, item_count: int, max_len: int, dim: int = 64) -> None:
        super().__init__()
        self.items = torch.nn.Embedding(item_count, dim, padding_idx=0)
        self.positions = torch.nn.Embedding(max_len, dim)
        layer = torch.nn.TransformerEncoderLayer(
            dim, nhead=2, dim_feedforward=4 * dim, dropout=0.0, batch_first=True
        )
        self.encoder = torch.nn.TransformerEncoder(
            layer, num_layers=2, enable_nested_tensor=False
        )

    def forward(self, item_seq: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(item_seq.shape[1], device=item_seq.device)
        hidden = self.items(item_seq) + self.positions(positions).unsqueeze(0)
        hidden = self.encoder(hidden, src_key_padding_mask=item_seq == 0)
        return hidden[:, -1, :] @ self.items.weight.T


def read_purchases(limit: int) -> tuple[list[tuple[str, str, str]], dict[str, str]]:
    """(user, stock code, description) of the first ``limit`` product purchases."""
    purchases: list[tuple[str, str, str]] = []
    catalogue: dict[str, str] = {}
    with gzip.open(TRANSACTIONS, "rt", newline="") as lines:
        for row in csv.DictReader(lines):
            if row["InvoiceNo"].startswith("C") or row["StockCode"] in NON_PRODUCTS:
                continue
            catalogue.setdefault(row["StockCode"], row["Description"])
            if len(purchases) < limit:
                user = row["CustomerID"].removesuffix(".0")
                purchases.append((user, row["StockCode"], row["Description"]))
    return purchases, catalogue


def build_artifact(
    directory: Path, catalogue: dict[str, str], popular: list[str], max_len: int
) -> tuple[ModelReady, str]:
    item_ids = ("", *sorted(catalogue))
    index = {item: n for n, item in enumerate(item_ids)}
    version = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ") + "-bench"
    metadata = ArtifactMetadata(
        model_name="sequential-recommender",
        version=version,
        max_len=max_len,
        item_ids=item_ids,
        item_descriptions=("", *(catalogue[i] for i in item_ids[1:])),
        popular_items=tuple(index[i] for i in popular[:500]),
    )
    torch.manual_seed(0)
    model = SequentialRecommender(len(item_ids), max_len).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        module = torch.jit.script(model)
    ready = write_artifact(module, metadata, directory / version / "model.pt")
    return ready, version


def publish(
    settings: KafkaSettings, purchases: list[tuple[str, str, str]], ready: ModelReady
) -> None:
    producer = Producer(settings.producer_config())
    topic = settings.topic(Topic.INGESTED_EVENTS)
    for n, (user, item, description) in enumerate(purchases):
        event = BehaviourEvent(
            event_id=f"bench-{n}",
            type=BehaviourType.BEHAVIOUR_TYPE_PURCHASE,
            user_id=user,
            item_id=item,
            item_description=description,
            quantity=1,
            source="bench",
        )
        value, headers = encode(event)
        headers.append(("item-kind", b"product"))
        while True:
            try:
                producer.produce(topic, value, user.encode(), headers=headers)
                break
            except BufferError:
                producer.poll(0.1)
    assert producer.flush(120) == 0
    value, headers = encode(ready)
    producer.produce(settings.topic(Topic.MODEL_READY), value, headers=headers)
    assert producer.flush(60) == 0


def time_calls(
    target: str, users: list[str], calls: int, k: int, concurrency: int
) -> tuple[list[float], int, float]:
    def one(n: int) -> tuple[float, bool]:
        started = time.perf_counter()
        response = client.recommend(users[n % len(users)], k)
        return time.perf_counter() - started, response.fallback

    with StorefrontClient(target, deadline_seconds=2.0) as client:
        for n in range(50):
            one(n)
        started = time.perf_counter()
        with ThreadPoolExecutor(concurrency) as pool:
            results = list(pool.map(one, range(calls)))
        wall_seconds = time.perf_counter() - started
    latencies = [seconds for seconds, _ in results]
    return latencies, sum(fallback for _, fallback in results), wall_seconds


def wait_for_version(target: str, user: str, version: str, timeout_s: float) -> float:
    started = time.monotonic()
    with StorefrontClient(target, deadline_seconds=2.0) as client:
        while time.monotonic() - started < timeout_s:
            try:
                if client.recommend(user, 10).model_version == version:
                    return time.monotonic() - started
            except grpc.RpcError:
                pass
            time.sleep(0.2)
    raise TimeoutError(f"{version} not served within {timeout_s}s")


def wait_for_quiet_history(metrics_url: str, timeout_s: float) -> int:
    """Wait until the service has read every published event; return the count."""
    deadline = time.monotonic() + timeout_s
    previous = -1
    while time.monotonic() < deadline:
        with urllib.request.urlopen(metrics_url, timeout=5) as response:
            text = response.read().decode()
        seen = sum(
            int(float(line.rsplit(" ", 1)[1]))
            for line in text.splitlines()
            if line.startswith("recops_inference_history_events_total")
        )
        if seen == previous:
            return seen
        previous = seen
        time.sleep(1.0)
    raise TimeoutError(f"history still growing after {timeout_s}s")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--max-len", type=int, default=50)
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--grpc-port", type=int, default=50151)
    parser.add_argument("--metrics-port", type=int, default=9193)
    parser.add_argument("--service-log", default="/tmp/recops-inference-bench.log")
    args = parser.parse_args()

    settings = KafkaSettings.from_env(client_id="recops-bench")
    purchases, catalogue = read_purchases(args.events)
    counts = collections.Counter(item for _, item, _ in purchases)
    users = list(dict.fromkeys(user for user, _, _ in purchases if user))

    with tempfile.TemporaryDirectory() as directory:
        ready, version = build_artifact(
            Path(directory),
            catalogue,
            [i for i, _ in counts.most_common()],
            args.max_len,
        )
        publish(settings, purchases, ready)
        target = f"127.0.0.1:{args.grpc_port}"
        env = {
            **os.environ,
            "RECOPS_INFERENCE_GRPC_PORT": str(args.grpc_port),
            "RECOPS_INFERENCE_METRICS_PORT": str(args.metrics_port),
        }
        log = open(args.service_log, "w")  # noqa: SIM115 - open while it runs
        service = subprocess.Popen(
            [sys.executable, "-m", "inference"], env=env, stderr=log
        )
        try:
            seconds_to_serve = wait_for_version(target, users[-1], version, 120)
            history_events = wait_for_quiet_history(
                f"http://127.0.0.1:{args.metrics_port}/metrics", 300
            )
            latencies, fallbacks, wall_seconds = time_calls(
                target, users, args.calls, args.k, args.concurrency
            )
        finally:
            service.send_signal(signal.SIGTERM)
            service.wait(30)
            log.close()

    cuts = statistics.quantiles(latencies, n=100)
    print(
        json.dumps(
            {
                "items": len(catalogue) + 1,
                "max_len": args.max_len,
                "events_published": len(purchases),
                "history_events_read": history_events,
                "users": len(users),
                "calls": args.calls,
                "concurrency": args.concurrency,
                "k": args.k,
                "fallback_answers": fallbacks,
                "seconds_until_model_served": round(seconds_to_serve, 2),
                "latency_p50_ms": round(cuts[49] * 1000, 2),
                "latency_p99_ms": round(cuts[98] * 1000, 2),
                "calls_per_second": round(len(latencies) / wall_seconds, 1),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
