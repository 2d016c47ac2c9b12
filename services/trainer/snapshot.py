"""Read the customers' purchases out of a training snapshot.

A snapshot is the directory ``python -m ingest snapshot`` writes:
``{train,validation,test}.parquet`` split by event time, and ``manifest.json``
with each file's sha256, which is checked before anything is read.
The trainer learns from purchases only: rows whose ``event_type`` is
``purchase``, with a customer (non-empty ``user_id``), a product
(``item_kind`` ``product``) and a positive quantity.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from trainer.errors import SnapshotError

logger = logging.getLogger(__name__)

SPLITS = ("train", "validation", "test")
LATEST = "latest"
_COLUMNS = [
    "event_type",
    "user_id",
    "item_id",
    "item_description",
    "item_kind",
    "quantity",
    "event_time",
]


@dataclasses.dataclass(frozen=True)
class PurchaseLog:
    """One split's purchases in event-time order, as parallel columns.

    ``event_times`` are seconds since the epoch.
    """

    user_ids: list[str]
    item_ids: list[str]
    item_descriptions: list[str]
    event_times: list[float]

    def __len__(self) -> int:
        return len(self.item_ids)


@dataclasses.dataclass(frozen=True)
class SnapshotPurchases:
    """The purchases of the three splits of one snapshot."""

    snapshot_id: str
    directory: Path
    train: PurchaseLog
    validation: PurchaseLog
    test: PurchaseLog


def resolve_snapshot(spec: str, snapshots_dir: Path) -> Path:
    """The snapshot directory ``spec`` names: a path, or ``latest``."""
    if spec != LATEST:
        directory = Path(spec)
        if not (directory / "manifest.json").is_file():
            raise SnapshotError(f"no snapshot manifest in {directory}")
        return directory.resolve()

    candidates = [p.parent for p in snapshots_dir.glob("*/manifest.json")]
    if not candidates:
        raise SnapshotError(f"no snapshot under {snapshots_dir}")
    return max(candidates, key=_created_at).resolve()


def _created_at(directory: Path) -> tuple[float, str]:
    manifest = directory / "manifest.json"
    try:
        created = json.loads(manifest.read_text())["created_at"]
        at = datetime.fromisoformat(created).timestamp()
    except (OSError, ValueError, KeyError, TypeError):
        at = manifest.stat().st_mtime
    return at, directory.name


def load_purchases(directory: Path) -> SnapshotPurchases:
    """Read the customers' product purchases of every split."""
    try:
        manifest = json.loads((directory / "manifest.json").read_text())
    except (OSError, ValueError) as exc:
        raise SnapshotError(f"unreadable snapshot manifest in {directory}") from exc
    digests = manifest.get("sha256", {}) if isinstance(manifest, dict) else None
    if not isinstance(digests, dict):
        raise SnapshotError(f"malformed snapshot manifest in {directory}")
    snapshot_id = str(manifest.get("snapshot_id") or directory.name)
    _check_digests(directory, digests)

    logs = {split: _read_split(directory / f"{split}.parquet") for split in SPLITS}
    logger.info(
        "read snapshot %s",
        snapshot_id,
        extra={"snapshot_id": snapshot_id, **{s: len(p) for s, p in logs.items()}},
    )
    return SnapshotPurchases(snapshot_id=snapshot_id, directory=directory, **logs)


def _check_digests(directory: Path, digests: Mapping[str, str]) -> None:
    """Refuse a split file whose bytes are not the ones the manifest lists."""
    for name, expected in sorted(digests.items()):
        digest = hashlib.sha256()
        try:
            with open(directory / name, "rb") as file:
                for block in iter(lambda: file.read(1 << 20), b""):
                    digest.update(block)
        except OSError as exc:
            raise SnapshotError(f"cannot read {directory / name}: {exc}") from exc
        if digest.hexdigest() != expected:
            raise SnapshotError(
                f"{directory / name} has sha256 {digest.hexdigest()}, "
                f"not the manifest's {expected}: the snapshot is damaged"
            )


def _read_split(path: Path) -> PurchaseLog:
    try:
        table = pq.read_table(path, columns=_COLUMNS)
    except (OSError, pa.ArrowInvalid, KeyError) as exc:
        raise SnapshotError(f"cannot read {path}: {exc}") from exc

    keep = pc.and_(
        pc.and_(
            pc.equal(table["event_type"], "purchase"),
            pc.not_equal(table["user_id"], ""),
        ),
        pc.and_(
            pc.equal(table["item_kind"], "product"),
            pc.greater(table["quantity"], 0),
        ),
    )
    purchases = table.filter(keep)
    purchases = purchases.take(pc.sort_indices(purchases["event_time"]))
    return PurchaseLog(
        user_ids=purchases["user_id"].to_pylist(),
        item_ids=purchases["item_id"].to_pylist(),
        item_descriptions=purchases["item_description"].fill_null("").to_pylist(),
        event_times=_epoch_seconds(purchases["event_time"]),
    )


def _epoch_seconds(times: pa.ChunkedArray) -> list[float]:
    """Event times as seconds since the epoch, whatever the column's unit."""
    micros = pc.cast(pc.cast(times, pa.timestamp("us", tz="UTC")), pa.int64())
    return [value / 1e6 for value in micros.to_pylist()]
