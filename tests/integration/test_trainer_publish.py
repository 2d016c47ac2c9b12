"""The trainer end to end: a tiny snapshot in, ModelReady on the real cluster."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from eventbus import KafkaSettings, Topic, decode
from eventbus.contracts import ModelReady
from eventbus.snapshots import SNAPSHOT_SCHEMA as SCHEMA
from trainer.artifact import file_digest, load_model_uri

REPO = Path(__file__).resolve().parents[2]
TINY_TRAINING = {
    "RECOPS_TRAINER_MAX_LEN": "8",
    "RECOPS_TRAINER_HISTORY_LEN": "16",
    "RECOPS_TRAINER_HIDDEN_SIZE": "16",
    "RECOPS_TRAINER_NUM_LAYERS": "1",
    "RECOPS_TRAINER_MAX_EPOCHS": "3",
}


def purchase(customer: int, item: int, minute: int) -> dict[str, object]:
    return {
        "event_id": f"{customer}-{minute}",
        "event_type": "purchase",
        "user_id": str(12000 + customer),
        "item_id": f"2{item:04d}",
        "query": "",
        "quantity": 2,
        "price": 0.85,
        "event_time": datetime(2011, 3, 1, tzinfo=UTC) + timedelta(minutes=minute),
        "session_id": f"S{customer}-{minute}",
        "item_description": f"PRODUCT {item}",
        "country": "United Kingdom",
        "source": "test",
        "item_kind": "product",
    }


def write_snapshot(directory: Path) -> None:
    """Forty customers buying ten products each; the last steps validate and test."""
    splits: dict[str, list[dict[str, object]]] = {
        "train": [],
        "validation": [],
        "test": [],
    }
    for customer in range(40):
        for step in range(10):
            split = "train" if step < 7 else "validation" if step < 9 else "test"
            item = (customer + step) % 25
            splits[split].append(purchase(customer, item, step))
    directory.mkdir(parents=True)
    for split, rows in splits.items():
        pq.write_table(
            pa.Table.from_pylist(rows, schema=SCHEMA), directory / f"{split}.parquet"
        )
    (directory / "manifest.json").write_text(
        json.dumps(
            {"snapshot_id": directory.name, "created_at": "2011-03-02T00:00:00Z"}
        )
    )


def read_model_ready(settings: KafkaSettings) -> list[ModelReady]:
    """Every ModelReady on the topic: wait for the first, then drain briefly."""
    consumer = Consumer(settings.consumer_config(f"test-{uuid.uuid4().hex[:8]}"))
    consumer.assign(
        [TopicPartition(settings.topic(Topic.MODEL_READY), 0, OFFSET_BEGINNING)]
    )
    events: list[ModelReady] = []
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            record = consumer.poll(timeout=1.0 if events else 5.0)
            if record is None and events:
                break
            if record is not None and not record.error():
                events.append(decode(ModelReady, record.value(), record.headers()))
    finally:
        consumer.close()
    return events


def test_a_trained_model_is_announced_with_the_digest_of_the_stored_file(
    kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    write_snapshot(tmp_path / "snapshots" / "20110302T000000Z-tiny")
    env = {
        **os.environ,
        **TINY_TRAINING,
        "PYTHONPATH": os.pathsep.join(
            str(REPO / p) for p in (".", "services", "build/gen")
        ),
        "RECOPS_KAFKA_BOOTSTRAP": kafka_settings.bootstrap_servers,
        "RECOPS_TOPIC_PREFIX": kafka_settings.topic_prefix,
        "RECOPS_STATE_DIR": str(tmp_path),
        "RECOPS_TRAINER_METRICS_PORT": "0",
    }

    run = subprocess.run(
        [sys.executable, "-m", "trainer", "train", "--snapshot", "latest"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )

    assert run.returncode == 0, run.stderr[-2000:]
    summary = json.loads(run.stdout.strip().splitlines()[-1])
    [ready] = read_model_ready(kafka_settings)
    assert ready.version == summary["version"]
    assert ready.snapshot_id == "20110302T000000Z-tiny"
    assert ready.model_name == "sequential-recommender"
    model_path = Path(ready.artifact_uri.removeprefix("file://"))
    assert model_path.parent.parent.parent == tmp_path / "registry"
    assert (ready.sha256, ready.size_bytes) == file_digest(model_path)
    assert set(ready.metrics) >= {
        "ndcg@10",
        "new_items.ndcg@10",
        "baseline.repeat.ndcg@10",
    }
    loaded = load_model_uri(
        ready.artifact_uri,
        expected_sha256=ready.sha256,
        expected_size_bytes=ready.size_bytes,
    )
    assert loaded.metadata.version == ready.version
