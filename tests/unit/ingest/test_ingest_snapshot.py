import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from ingest.errors import SnapshotError
from ingest.snapshot import SCHEMA, SnapshotEvent, split_events, write_snapshot

START_US = int(datetime(2011, 1, 1, tzinfo=UTC).timestamp() * 1_000_000)
MINUTE_US = 60 * 1_000_000


def generated(
    count: int, *, minutes: list[int] | None = None, first_offset: int = 0
) -> list[SnapshotEvent]:
    """Events one minute apart, or at the given minutes, in arrival order."""
    at = minutes if minutes is not None else list(range(count))
    return [
        SnapshotEvent(
            event_id=f"e{n:05d}",
            event_type="purchase",
            user_id="" if n % 3 == 0 else f"u{n % 7}",
            item_id=f"{20000 + n % 11}",
            query="",
            quantity=1 + n % 4,
            price=1.25,
            event_time_us=START_US + at[n] * MINUTE_US,
            session_id=f"s{n // 5}",
            item_description="A MUG",
            country="United Kingdom",
            source="test",
            item_kind="product",
            partition=n % 3,
            offset=first_offset + n,
        )
        for n in range(count)
    ]


def write(events: list[SnapshotEvent], directory: Path) -> Path:
    return write_snapshot(
        split_events(events),
        directory,
        source_topic="t.ingested-events",
        end_offsets={0: 4, 1: 3},
        ingest_version="test",
    )


def test_distinct_times_split_exactly_seven_two_one() -> None:
    split = split_events(generated(100))

    assert (len(split.train), len(split.validation), len(split.test)) == (70, 20, 10)


def test_every_split_lies_wholly_before_the_next_boundary() -> None:
    split = split_events(generated(1_000, minutes=[n // 7 for n in range(1_000)]))

    assert max(e.event_time_us for e in split.train) < split.validation_from_us
    assert min(e.event_time_us for e in split.validation) == split.validation_from_us
    assert max(e.event_time_us for e in split.validation) < split.test_from_us
    assert min(e.event_time_us for e in split.test) == split.test_from_us


def test_events_sharing_the_boundary_time_stay_in_one_split() -> None:
    # Minutes 0..9 hold ten events each, except minute 6 holds twenty.
    minutes = [m for m in range(10) for _ in range(20 if m == 6 else 10)]
    split = split_events(generated(len(minutes), minutes=minutes))

    validation_minutes = {
        (e.event_time_us - START_US) // MINUTE_US for e in split.validation
    }
    assert len(split.train) == 60
    assert 6 in validation_minutes
    assert all((e.event_time_us - START_US) // MINUTE_US < 6 for e in split.train)


def test_splits_are_ordered_by_time_whatever_the_arrival_order() -> None:
    events = generated(50, minutes=[(n * 37) % 50 for n in range(50)])

    split = split_events(events)

    rows = split.train + split.validation + split.test
    assert [e.event_time_us for e in rows] == sorted(e.event_time_us for e in rows)


def test_a_resent_event_is_kept_once_as_first_read() -> None:
    first = generated(20)
    resent = generated(1, minutes=[99], first_offset=500)

    split = split_events(first + resent)

    kept = [
        e for e in split.train + split.validation + split.test if e.event_id == "e00000"
    ]
    assert [e.offset for e in kept] == [0]
    assert split.duplicates_dropped == 1


def test_no_events_is_a_snapshot_error() -> None:
    with pytest.raises(SnapshotError):
        split_events([])


def test_the_files_hold_the_contract_columns_and_the_split_rows(tmp_path: Path) -> None:
    directory = write(generated(40), tmp_path)

    tables = {
        name: pq.read_table(directory / f"{name}.parquet")
        for name in ("train", "validation", "test")
    }
    assert {name: t.num_rows for name, t in tables.items()} == {
        "train": 28,
        "validation": 8,
        "test": 4,
    }
    assert all(t.schema.equals(SCHEMA) for t in tables.values())
    first = tables["train"].slice(0, 1).to_pylist()[0]
    assert first["event_time"] == datetime(2011, 1, 1, tzinfo=UTC)
    assert first["event_id"] == "e00000"


def test_the_manifest_names_the_snapshot_and_checksums_each_file(
    tmp_path: Path,
) -> None:
    directory = write(generated(40), tmp_path)

    manifest = json.loads((directory / "manifest.json").read_text())

    assert manifest["snapshot_id"] == directory.name
    assert manifest["rows"] == {"train": 28, "validation": 8, "test": 4}
    assert manifest["topic_end_offsets"] == {"0": 4, "1": 3}
    assert manifest["validation_from"] == "2011-01-01T00:28:00+00:00"
    assert manifest["test_from"] == "2011-01-01T00:36:00+00:00"
    for name, digest in manifest["sha256"].items():
        assert hashlib.sha256((directory / name).read_bytes()).hexdigest() == digest


def test_the_same_events_give_the_same_snapshot_id_and_bytes(tmp_path: Path) -> None:
    once = write(generated(60), tmp_path / "a")
    again = write(list(reversed(generated(60))), tmp_path / "b")
    other = write(generated(61), tmp_path / "c")

    assert once.name == again.name
    assert once.name != other.name
    for name in ("train.parquet", "validation.parquet", "test.parquet"):
        assert (once / name).read_bytes() == (again / name).read_bytes()


def test_writing_an_existing_snapshot_again_keeps_it_and_leaves_no_staging(
    tmp_path: Path,
) -> None:
    first = write(generated(30), tmp_path)
    created_at = json.loads((first / "manifest.json").read_text())["created_at"]

    second = write(generated(30), tmp_path)

    assert second == first
    assert json.loads((first / "manifest.json").read_text())["created_at"] == created_at
    assert [p.name for p in tmp_path.iterdir()] == [first.name]
