import json
from pathlib import Path

import boto3
import pytest
from trainer_versions import MODEL_NAME, write_version

from trainer.artifact import MANIFEST_FILE, MODEL_FILE, ModelManifest
from trainer.errors import ArtifactError, ArtifactIntegrityError
from trainer.registry import fetch_version, keep_version, verify_version
from trainer.settings import TrainerSettings
from trainer.storage import LocalStore, S3Store, open_store, version_key

VERSION = "20261203T190102Z-1a2b3c4d"


def test_a_version_kept_in_s3_is_listed_verified_and_fetched_whole(
    s3_store: S3Store, tmp_path: Path
) -> None:
    stored = write_version(tmp_path / "written", VERSION)

    kept = keep_version(s3_store, stored)
    local = fetch_version(s3_store, MODEL_NAME, VERSION, tmp_path / "cache")

    assert kept.uri == f"{s3_store.uri}/{MODEL_NAME}/{VERSION}/{MODEL_FILE}"
    assert kept.uri.startswith("s3://")
    assert s3_store.version_names(MODEL_NAME) == [VERSION]
    assert verify_version(s3_store, MODEL_NAME, VERSION) == []
    for name in stored.manifest.files:
        assert (local / name).read_bytes() == (stored.directory / name).read_bytes()
    assert ModelManifest.from_json((local / MANIFEST_FILE).read_text()) == (
        stored.manifest
    )


def test_an_upload_failing_before_the_manifest_leaves_no_version_in_s3(
    s3_store: S3Store, tmp_path: Path
) -> None:
    stored = write_version(tmp_path / "written", VERSION)
    (stored.directory / "triton" / MODEL_NAME / "config.pbtxt").unlink()

    with pytest.raises(ArtifactError):
        s3_store.put_version(stored.directory, stored.manifest)

    assert s3_store.version_names(MODEL_NAME) == []
    assert s3_store.read_bytes(version_key(MODEL_NAME, VERSION, MODEL_FILE))
    assert s3_store.read_bytes(version_key(MODEL_NAME, VERSION, MANIFEST_FILE)) is None


def test_an_upload_retried_after_a_failure_completes_the_version(
    s3_store: S3Store, tmp_path: Path
) -> None:
    stored = write_version(tmp_path / "written", VERSION)
    config = stored.directory / "triton" / MODEL_NAME / "config.pbtxt"
    text = config.read_text()
    config.unlink()
    with pytest.raises(ArtifactError):
        s3_store.put_version(stored.directory, stored.manifest)

    config.write_text(text)
    s3_store.put_version(stored.directory, stored.manifest)

    assert verify_version(s3_store, MODEL_NAME, VERSION) == []


def test_a_file_changed_in_s3_fails_verification_and_is_never_fetched(
    s3_store: S3Store, s3_endpoint_url: str, s3_bucket: str, tmp_path: Path
) -> None:
    keep_version(s3_store, write_version(tmp_path / "written", VERSION))
    changed = f"models/{MODEL_NAME}/{VERSION}/{MODEL_FILE}"
    client = boto3.client("s3", endpoint_url=s3_endpoint_url)
    client.put_object(Bucket=s3_bucket, Key=changed, Body=b"not the model")

    problems = verify_version(s3_store, MODEL_NAME, VERSION)

    assert [problem.split()[0] for problem in problems] == [MODEL_FILE]
    with pytest.raises(ArtifactIntegrityError):
        fetch_version(s3_store, MODEL_NAME, VERSION, tmp_path / "cache")
    assert list((tmp_path / "cache" / MODEL_NAME).iterdir()) == []


def test_an_existing_version_in_s3_is_never_overwritten(
    s3_store: S3Store, tmp_path: Path
) -> None:
    stored = write_version(tmp_path / "written", VERSION)
    keep_version(s3_store, stored)
    other = write_version(tmp_path / "other", VERSION, seed=2)

    with pytest.raises(ArtifactError):
        s3_store.put_version(other.directory, other.manifest)

    assert verify_version(s3_store, MODEL_NAME, VERSION) == []
    manifest_key = version_key(MODEL_NAME, VERSION, MANIFEST_FILE)
    assert s3_store.read_bytes(manifest_key) == stored.manifest.to_json().encode()


def test_a_local_copy_failing_midway_leaves_no_version_and_no_staging(
    tmp_path: Path,
) -> None:
    stored = write_version(tmp_path / "written", VERSION)
    (stored.directory / "triton" / MODEL_NAME / "config.pbtxt").unlink()
    store = LocalStore(tmp_path / "registry")

    with pytest.raises(ArtifactError):
        store.put_version(stored.directory, stored.manifest)

    assert store.version_names(MODEL_NAME) == []
    assert list((tmp_path / "registry" / MODEL_NAME).iterdir()) == []


def test_keeping_a_version_already_in_the_local_registry_changes_nothing(
    tmp_path: Path,
) -> None:
    stored = write_version(tmp_path, VERSION)
    before = stored.model_path.stat().st_ino

    kept = keep_version(LocalStore(tmp_path), stored)

    assert kept.uri == stored.model_path.resolve().as_uri()
    assert stored.model_path.stat().st_ino == before


def test_a_small_object_is_replaced_whole_and_leaves_no_temporary_file(
    tmp_path: Path,
) -> None:
    store = LocalStore(tmp_path)
    store.write_bytes(f"{MODEL_NAME}/SERVING", b"first")
    store.write_bytes(f"{MODEL_NAME}/SERVING", b"second")

    assert store.read_bytes(f"{MODEL_NAME}/SERVING") == b"second"
    assert [path.name for path in (tmp_path / MODEL_NAME).iterdir()] == ["SERVING"]
    assert store.read_bytes(f"{MODEL_NAME}/ABSENT") is None


def test_registry_uris_open_a_directory_or_a_bucket(
    tmp_path: Path, s3_endpoint_url: str, s3_credentials: None
) -> None:
    local = open_store(tmp_path.as_uri())
    remote = open_store("s3://models/recops/", s3_endpoint_url=s3_endpoint_url)

    assert isinstance(local, LocalStore) and local.root == tmp_path
    assert isinstance(remote, S3Store)
    assert (remote.bucket, remote.prefix) == ("models", "recops")
    with pytest.raises(ArtifactError):
        open_store("http://example.com/registry")


def test_the_registry_defaults_to_the_state_directory(tmp_path: Path) -> None:
    settings = TrainerSettings.from_env({"RECOPS_STATE_DIR": str(tmp_path)})

    assert settings.registry_uri == (tmp_path / "registry").as_uri()
    assert settings.registry_dir == tmp_path / "registry"
    assert (settings.gate_metric, settings.gate_tolerance) == ("ndcg@10", 0.02)


def test_a_bucket_registry_writes_versions_to_a_local_cache_first(
    tmp_path: Path,
) -> None:
    settings = TrainerSettings.from_env(
        {
            "RECOPS_STATE_DIR": str(tmp_path),
            "RECOPS_REGISTRY_URI": "s3://models/recops",
            "RECOPS_S3_ENDPOINT_URL": "http://127.0.0.1:9000",
            "RECOPS_TRAINER_GATE_TOLERANCE": "0.05",
        }
    )

    assert settings.registry_dir == tmp_path / "registry-cache"
    assert settings.s3_endpoint_url == "http://127.0.0.1:9000"
    assert settings.gate_tolerance == 0.05


@pytest.mark.parametrize(
    "env",
    [
        {"RECOPS_REGISTRY_URI": "ftp://host/registry"},
        {"RECOPS_TRAINER_GATE_TOLERANCE": "1.5"},
        {"RECOPS_TRAINER_GATE_TOLERANCE": "nan"},
        {"RECOPS_TRAINER_GATE_METRIC": ""},
    ],
)
def test_registry_and_gate_settings_that_cannot_work_are_refused(
    env: dict[str, str], tmp_path: Path
) -> None:
    with pytest.raises(ValueError):
        TrainerSettings.from_env({"RECOPS_STATE_DIR": str(tmp_path), **env})


def test_a_format_1_manifest_still_reads_as_listing_model_pt_alone() -> None:
    old = {
        "format": 1,
        "model_name": MODEL_NAME,
        "version": VERSION,
        "created_at": "2026-12-03T19:01:02+00:00",
        "snapshot_id": "snap-1",
        "model_file": MODEL_FILE,
        "sha256": "ab" * 32,
        "size_bytes": 123,
        "item_count": 6,
        "max_len": 4,
        "metrics": {},
        "config": {},
        "training": {},
    }

    manifest = ModelManifest.from_json(json.dumps(old))

    assert list(manifest.files) == [MODEL_FILE]
    assert manifest.files[MODEL_FILE].sha256 == "ab" * 32
    assert manifest.files[MODEL_FILE].size_bytes == 123
    assert json.loads(manifest.to_json())["format"] == 2


def test_a_manifest_naming_a_file_outside_its_version_is_refused() -> None:
    stored_fields = {
        "format": 2,
        "model_name": MODEL_NAME,
        "version": VERSION,
        "created_at": "",
        "snapshot_id": "",
        "sha256": "",
        "size_bytes": 0,
        "item_count": 6,
        "max_len": 4,
        "metrics": {},
        "config": {},
        "training": {},
        "files": {"../../SERVING": {"sha256": "", "size_bytes": 0}},
    }

    with pytest.raises(ArtifactError):
        ModelManifest.from_json(json.dumps(stored_fields))
