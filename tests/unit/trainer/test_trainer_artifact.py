import json
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest
import torch
from trainer_snapshots import TINY_CONFIG

from trainer.artifact import (
    MANIFEST_FILE,
    MODEL_FILE,
    ModelMetadata,
    StoredModel,
    code_version,
    file_digest,
    list_versions,
    load_model_uri,
    load_model_version,
    new_version,
    staged_version,
    write_model_version,
)
from trainer.errors import ArtifactError, ArtifactIntegrityError
from trainer.model import SequentialRecommender, to_torchscript

ITEM_IDS = ["", "85123A", "71053", "84406B", "22423", "47566"]
VERSION = "20261203T190102Z-1a2b3c4d"


def trained_model() -> SequentialRecommender:
    torch.manual_seed(11)
    return SequentialRecommender(len(ITEM_IDS), TINY_CONFIG).eval()


def store(
    registry: Path, model: SequentialRecommender, version: str = VERSION
) -> StoredModel:
    metadata = ModelMetadata(
        model_name="sequential-recommender",
        version=version,
        max_len=TINY_CONFIG.history_len,
        item_ids=ITEM_IDS,
        item_descriptions=["", "HEART", "LANTERN", "HANGER", "CAKE STAND", "FLAG"],
        popular_items=[1, 2, 3],
    )
    return write_model_version(
        registry,
        to_torchscript(model),
        metadata,
        snapshot_id="snap-1",
        metrics={"ndcg@10": 0.2},
        config=TINY_CONFIG.as_dict(),
        training={"epochs": 1},
        created_at=datetime(2026, 12, 3, 19, 1, 2, tzinfo=UTC),
    )


def test_a_stored_version_loads_and_scores_like_the_trained_model(
    tmp_path: Path,
) -> None:
    model = trained_model()
    stored = store(tmp_path, model)
    length = TINY_CONFIG.history_len
    short = [0] * (length - 3) + [1, 2, 3]
    full = [n % 5 + 1 for n in range(length)]
    batch = torch.tensor([short, full])

    loaded = load_model_version(stored.directory)

    with torch.no_grad():
        expected = model(batch)
    assert torch.allclose(loaded.scores(batch), expected, atol=1e-5)
    assert loaded.metadata.item_ids == ITEM_IDS
    assert loaded.metadata.max_len == TINY_CONFIG.history_len
    assert loaded.manifest.snapshot_id == "snap-1"


def test_the_manifest_records_digest_size_metrics_and_config(tmp_path: Path) -> None:
    stored = store(tmp_path, trained_model())

    manifest = json.loads((stored.directory / MANIFEST_FILE).read_text())

    sha256, size = file_digest(stored.directory / MODEL_FILE)
    assert (manifest["sha256"], manifest["size_bytes"]) == (sha256, size)
    assert manifest["metrics"] == {"ndcg@10": 0.2}
    assert manifest["config"]["max_len"] == TINY_CONFIG.max_len
    assert manifest["created_at"] == "2026-12-03T19:01:02+00:00"
    assert stored.directory == tmp_path / "sequential-recommender" / VERSION


def test_the_artifact_uri_finds_the_same_version(tmp_path: Path) -> None:
    stored = store(tmp_path, trained_model())

    loaded = load_model_uri(stored.uri, expected_sha256=stored.manifest.sha256)

    assert stored.uri.startswith("file:///")
    assert loaded.metadata.version == VERSION


def test_a_changed_model_file_is_refused(tmp_path: Path) -> None:
    stored = store(tmp_path, trained_model())
    with open(stored.model_path, "ab") as file:
        file.write(b"\0")

    with pytest.raises(ArtifactIntegrityError):
        load_model_version(stored.directory)


def test_a_digest_other_than_the_announced_one_is_refused(tmp_path: Path) -> None:
    stored = store(tmp_path, trained_model())

    with pytest.raises(ArtifactIntegrityError):
        load_model_version(stored.directory, expected_sha256="0" * 64)


def test_a_model_with_non_finite_scores_is_refused(tmp_path: Path) -> None:
    model = trained_model()
    with torch.no_grad():
        model.item_bias[2] = float("nan")
    stored = store(tmp_path, model)

    with pytest.raises(ArtifactIntegrityError):
        load_model_version(stored.directory)


def test_a_failed_write_leaves_no_version_and_no_staging_files(tmp_path: Path) -> None:
    with (
        pytest.raises(RuntimeError),
        staged_version(tmp_path, "sequential-recommender", VERSION) as staging,
    ):
        (staging / MODEL_FILE).write_bytes(b"half a model")
        raise RuntimeError("disk full")

    assert not (tmp_path / "sequential-recommender" / VERSION).exists()
    assert list((tmp_path / "sequential-recommender").iterdir()) == []
    assert list_versions(tmp_path) == []


def test_a_version_is_invisible_until_it_is_complete(tmp_path: Path) -> None:
    with staged_version(tmp_path, "sequential-recommender", VERSION) as staging:
        (staging / MODEL_FILE).write_bytes(b"model")
        (staging / MANIFEST_FILE).write_text("{}")
        assert list_versions(tmp_path) == []

    assert list_versions(tmp_path) == [tmp_path / "sequential-recommender" / VERSION]


def test_an_existing_version_is_never_overwritten(tmp_path: Path) -> None:
    store(tmp_path, trained_model())

    with pytest.raises(ArtifactError):
        store(tmp_path, trained_model())


def test_versions_name_the_utc_time_then_eight_hex_digits() -> None:
    version = new_version(datetime(2026, 12, 3, 19, 1, 2, tzinfo=UTC))

    stamp, token = version.split("-")
    assert stamp == "20261203T190102Z"
    assert len(token) == 8
    int(token, 16)


def test_the_code_version_is_the_environment_s_or_the_checkout_s_commit() -> None:
    repo = Path(__file__).resolve().parents[3]
    head = subprocess.run(
        ["git", "-C", str(repo), "rev-parse", "HEAD"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()

    assert code_version({"RECOPS_CODE_VERSION": "1.4.2"}) == "1.4.2"
    assert code_version({}).removesuffix("-dirty") == head
