"""Small generated purchase data for the trainer's tests."""

from __future__ import annotations

import json
import random
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from eventbus.snapshots import SNAPSHOT_SCHEMA as SCHEMA
from trainer.sequences import ItemCatalogue
from trainer.settings import TrainingConfig
from trainer.snapshot import PurchaseLog

START = datetime(2011, 1, 1, tzinfo=UTC)

# Small enough to train in about a second, big enough to learn a pattern.
TINY_CONFIG = TrainingConfig(
    max_len=8,
    history_len=12,
    hidden_size=32,
    num_layers=1,
    num_heads=2,
    dropout=0.0,
    learning_rate=0.01,
    batch_size=64,
    max_epochs=12,
    patience_epochs=12,
    max_training_seconds=60.0,
    eval_batch_size=64,
)


def purchase_log(
    purchases: Sequence[tuple[str, str]], days: Sequence[float] | None = None
) -> PurchaseLog:
    """(customer, product) purchases, one a minute unless ``days`` says when."""
    seconds = (
        [60.0 * n for n in range(len(purchases))]
        if days is None
        else [86_400.0 * day for day in days]
    )
    return PurchaseLog(
        user_ids=[user for user, _ in purchases],
        item_ids=[item for _, item in purchases],
        item_descriptions=["" for _ in purchases],
        event_times=seconds,
    )


def numbered_catalogue(purchase_counts: Sequence[int]) -> ItemCatalogue:
    """Products P01, P02, ... at indices 1, 2, ..., bought as often as given."""
    item_ids = [f"P{n:02d}" for n in range(1, len(purchase_counts) + 1)]
    return ItemCatalogue(
        item_ids=["", *item_ids],
        item_descriptions=["", *item_ids],
        purchase_counts=[0, *purchase_counts],
        index={item_id: n for n, item_id in enumerate(item_ids, start=1)},
    )


def event(
    user_id: str, item_id: str, minute: int, **changes: object
) -> dict[str, object]:
    """One snapshot row: a product purchase unless ``changes`` say otherwise."""
    row: dict[str, object] = {
        "event_id": f"{user_id}-{item_id}-{minute}",
        "event_type": "purchase",
        "user_id": user_id,
        "item_id": item_id,
        "query": "",
        "quantity": 1,
        "price": 1.25,
        "event_time": START + timedelta(minutes=minute),
        "session_id": f"{user_id}-{minute}",
        "item_description": f"PRODUCT {item_id}",
        "country": "United Kingdom",
        "source": "test",
        "item_kind": "product",
    }
    row.update(changes)
    return row


def write_snapshot(
    directory: Path,
    splits: Mapping[str, Sequence[Mapping[str, object]]],
    created_at: datetime = START,
) -> Path:
    """Write the three split files and a manifest, as ingest would."""
    directory.mkdir(parents=True)
    for split in ("train", "validation", "test"):
        table = pa.Table.from_pylist(list(splits.get(split, [])), schema=SCHEMA)
        pq.write_table(table, directory / f"{split}.parquet")
    manifest = {"snapshot_id": directory.name, "created_at": created_at.isoformat()}
    (directory / "manifest.json").write_text(json.dumps(manifest))
    return directory


def successor_sequences(
    customers: int, length: int, items: int, seed: int = 7
) -> list[list[str]]:
    """Purchase sequences in which item n is always followed by item n + 1."""
    generator = random.Random(seed)
    sequences = []
    for _ in range(customers):
        first = generator.randrange(items)
        sequences.append([f"P{(first + step) % items:03d}" for step in range(length)])
    return sequences


def successor_snapshot(directory: Path, customers: int = 120) -> Path:
    """A snapshot of successor sequences, cut 7:2:1 along every sequence.

    Every customer buys ten items, one a minute, in step with the others, so
    the split boundaries fall at the same step for everyone.
    """
    splits: dict[str, list[dict[str, object]]] = {
        "train": [],
        "validation": [],
        "test": [],
    }
    for n, sequence in enumerate(successor_sequences(customers, 10, 40)):
        for step, item_id in enumerate(sequence):
            split = "train" if step < 7 else "validation" if step < 9 else "test"
            splits[split].append(event(f"C{n:04d}", item_id, step))
    return write_snapshot(directory, splits)
