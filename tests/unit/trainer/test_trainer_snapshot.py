import hashlib
import json
import os
from datetime import timedelta
from pathlib import Path

import pytest
from trainer_snapshots import START, event, write_snapshot

from trainer.errors import SnapshotError
from trainer.snapshot import load_purchases, resolve_snapshot


def test_only_customers_product_purchases_are_read_in_time_order(
    tmp_path: Path,
) -> None:
    train = [
        event("17850", "71053", minute=5),
        event("17850", "85123A", minute=1),
        event("", "22423", minute=2),
        event("17850", "POST", minute=3, item_kind="non_product"),
        event("17850", "84406B", minute=4, event_type="return", quantity=-1),
        event("17850", "84029G", minute=6, event_type="view"),
        event("17850", "47566", minute=7, quantity=-2),
        event("13047", "71053", minute=2),
    ]
    snapshot = write_snapshot(tmp_path / "s1", {"train": train})

    purchases = load_purchases(snapshot)

    assert purchases.snapshot_id == "s1"
    assert purchases.train.item_ids == ["85123A", "71053", "71053"]
    assert purchases.train.user_ids == ["17850", "13047", "17850"]
    assert len(purchases.test) == 0


def test_purchase_times_are_read_as_seconds_since_the_epoch(tmp_path: Path) -> None:
    train = [
        event("17850", "71053", minute=90, event_time=START + timedelta(days=3)),
        event("17850", "85123A", minute=1, event_time=START + timedelta(seconds=1.5)),
    ]
    snapshot = write_snapshot(tmp_path / "s1", {"train": train})

    purchases = load_purchases(snapshot)

    start = START.timestamp()
    assert purchases.train.event_times == [start + 1.5, start + 3 * 86_400]


def test_latest_is_the_snapshot_created_last(tmp_path: Path) -> None:
    snapshots = tmp_path / "snapshots"
    write_snapshot(snapshots / "b-older", {}, created_at=START)
    write_snapshot(snapshots / "a-newer", {}, created_at=START + timedelta(hours=1))
    (snapshots / "a-newer" / "manifest.json").touch()
    os.utime(snapshots / "a-newer" / "manifest.json", (0, 0))

    assert resolve_snapshot("latest", snapshots) == (snapshots / "a-newer").resolve()


def test_a_directory_without_a_snapshot_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SnapshotError):
        resolve_snapshot(str(tmp_path), tmp_path)
    with pytest.raises(SnapshotError):
        resolve_snapshot("latest", tmp_path / "snapshots")


def test_a_snapshot_missing_a_split_file_is_refused(tmp_path: Path) -> None:
    snapshot = write_snapshot(tmp_path / "s1", {"train": [event("1", "22423", 0)]})
    (snapshot / "test.parquet").unlink()

    with pytest.raises(SnapshotError):
        load_purchases(snapshot)


def test_a_split_file_unlike_the_manifests_digest_is_refused(tmp_path: Path) -> None:
    snapshot = write_snapshot(
        tmp_path / "s1",
        {
            "train": [event("1", "22423", 0)],
            "test": [event("1", "22424", 9)],
        },
    )
    digests = {
        name: hashlib.sha256((snapshot / name).read_bytes()).hexdigest()
        for name in ("train.parquet", "validation.parquet", "test.parquet")
    }
    manifest = json.loads((snapshot / "manifest.json").read_text())
    (snapshot / "manifest.json").write_text(json.dumps({**manifest, "sha256": digests}))
    load_purchases(snapshot)
    (snapshot / "train.parquet").write_bytes((snapshot / "test.parquet").read_bytes())

    with pytest.raises(SnapshotError, match=r"train\.parquet has sha256"):
        load_purchases(snapshot)


@pytest.mark.parametrize("manifest", ["[1, 2]", '{"sha256": ["x"]}'])
def test_a_manifest_of_the_wrong_shape_is_refused(
    tmp_path: Path, manifest: str
) -> None:
    snapshot = write_snapshot(tmp_path / "s1", {"train": [event("1", "22423", 0)]})
    (snapshot / "manifest.json").write_text(manifest)

    with pytest.raises(SnapshotError, match="malformed snapshot manifest"):
        load_purchases(snapshot)
