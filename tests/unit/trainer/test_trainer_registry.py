import argparse
import tarfile
from collections.abc import Sequence
from pathlib import Path

import pytest
import torch
from trainer_versions import MAX_LEN, MODEL_NAME, write_version

from trainer.artifact import MODEL_FILE, load_model_version
from trainer.errors import ArtifactIntegrityError
from trainer.registry import (
    Outcome,
    back_up,
    keep_version,
    load_serving_model,
    read_serving,
    restore,
    verify_registry,
    write_serving,
)
from trainer.registry_cli import add_registry_commands, run_registry_command
from trainer.settings import TrainerSettings
from trainer.storage import LocalStore, S3Store

OLD = "20261201T000000Z-00000001"
NEW = "20261202T000000Z-00000002"


def main(argv: Sequence[str]) -> int:
    """``python -m trainer registry ...`` with the environment's settings."""
    parser = argparse.ArgumentParser()
    add_registry_commands(parser.add_subparsers(dest="command"))
    return run_registry_command(parser.parse_args(argv), TrainerSettings.from_env())


def damage(path: Path) -> None:
    with open(path, "ab") as file:
        file.write(b"\0")


def outcomes(results: list) -> dict[str, Outcome]:  # type: ignore[type-arg]
    return {result.version: result.outcome for result in results}


def test_a_backup_copies_every_good_version_and_names_a_damaged_one(
    tmp_path: Path,
) -> None:
    registry = tmp_path / "registry"
    write_version(registry, OLD)
    damaged = write_version(registry, NEW, seed=2)
    damage(damaged.directory / "triton" / MODEL_NAME / "config.pbtxt")

    results = back_up(LocalStore(registry), tmp_path / "backup")

    assert outcomes(results) == {OLD: Outcome.COPIED, NEW: Outcome.FAILED}
    assert LocalStore(tmp_path / "backup").version_names(MODEL_NAME) == [OLD]
    assert [r.outcome for r in verify_registry(LocalStore(tmp_path / "backup"))] == [
        Outcome.ALREADY_GOOD
    ]


def test_a_second_backup_to_the_same_directory_copies_only_new_versions(
    tmp_path: Path,
) -> None:
    registry = tmp_path / "registry"
    write_version(registry, OLD)
    back_up(LocalStore(registry), tmp_path / "backup")
    write_version(registry, NEW, seed=2)

    results = back_up(LocalStore(registry), tmp_path / "backup")

    assert outcomes(results) == {OLD: Outcome.ALREADY_GOOD, NEW: Outcome.COPIED}


def test_a_tar_backup_restores_into_an_empty_registry_with_its_pointer(
    tmp_path: Path,
) -> None:
    source = LocalStore(tmp_path / "registry")
    stored = write_version(source.root, OLD)
    write_serving(source, stored.manifest)
    archive = tmp_path / "drill.tar"

    back_up(source, archive)
    target = LocalStore(tmp_path / "restored")
    results = restore(target, archive)

    assert tarfile.is_tarfile(archive)
    assert outcomes(results) == {OLD: Outcome.COPIED}
    assert [r.outcome for r in verify_registry(target)] == [Outcome.ALREADY_GOOD]
    assert read_serving(target, MODEL_NAME) == read_serving(source, MODEL_NAME)
    assert not list(tmp_path.glob(".drill.tar*"))


@pytest.mark.parametrize("name", ["drill.tar.gz", "drill.tgz"])
def test_a_gzipped_tar_backup_is_one_compressed_file_that_restores(
    tmp_path: Path, name: str
) -> None:
    source = LocalStore(tmp_path / "registry")
    write_version(source.root, OLD)
    archive = tmp_path / name

    back_up(source, archive)
    results = restore(LocalStore(tmp_path / "restored"), archive)

    assert archive.is_file()
    assert archive.read_bytes()[:2] == b"\x1f\x8b"
    assert outcomes(results) == {OLD: Outcome.COPIED}


def test_a_cut_off_gzipped_backup_is_refused_as_damaged(tmp_path: Path) -> None:
    source = LocalStore(tmp_path / "registry")
    write_version(source.root, OLD)
    archive = tmp_path / "drill.tar.gz"
    back_up(source, archive)
    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    target = LocalStore(tmp_path / "restored")

    with pytest.raises(ValueError, match="damaged"):
        restore(target, cut)

    assert target.model_names() == []


def test_a_tar_backup_into_a_missing_directory_names_that_directory(
    tmp_path: Path,
) -> None:
    source = LocalStore(tmp_path / "registry")
    write_version(source.root, OLD)

    with pytest.raises(FileNotFoundError, match="missing is not a directory"):
        back_up(source, tmp_path / "missing" / "drill.tar")


def test_a_serving_version_without_its_manifest_fails_verification(
    tmp_path: Path,
) -> None:
    store = LocalStore(tmp_path / "registry")
    write_version(store.root, OLD)
    stored = write_version(store.root, NEW)
    write_serving(store, stored.manifest)
    (stored.directory / "manifest.json").unlink()

    results = list(verify_registry(store))

    assert outcomes(results) == {OLD: Outcome.ALREADY_GOOD, NEW: Outcome.FAILED}


def test_an_unreadable_serving_pointer_fails_verification(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "registry")
    write_version(store.root, OLD)
    store.write_bytes(f"{MODEL_NAME}/SERVING", b"garbage")

    results = list(verify_registry(store))

    assert outcomes(results) == {"SERVING": Outcome.FAILED, OLD: Outcome.ALREADY_GOOD}


def test_a_tar_backup_never_overwrites_an_existing_file(tmp_path: Path) -> None:
    archive = tmp_path / "drill.tar"
    archive.write_bytes(b"an older backup")

    with pytest.raises(FileExistsError):
        back_up(LocalStore(tmp_path / "registry"), archive)

    assert archive.read_bytes() == b"an older backup"


def test_restore_repairs_a_damaged_version_and_leaves_good_ones_untouched(
    tmp_path: Path,
) -> None:
    registry = LocalStore(tmp_path / "registry")
    good = write_version(registry.root, OLD)
    damaged = write_version(registry.root, NEW, seed=2)
    back_up(registry, tmp_path / "backup")
    good_inode = good.model_path.stat().st_ino
    damage(damaged.model_path)

    results = restore(registry, tmp_path / "backup")

    assert outcomes(results) == {OLD: Outcome.ALREADY_GOOD, NEW: Outcome.REPAIRED}
    assert good.model_path.stat().st_ino == good_inode
    assert load_model_version(damaged.directory).manifest.version == NEW
    entries = sorted(path.name for path in (registry.root / MODEL_NAME).iterdir())
    assert entries == [OLD, NEW]


def test_restore_never_puts_back_a_damaged_backup_copy(tmp_path: Path) -> None:
    registry = LocalStore(tmp_path / "registry")
    write_version(registry.root, OLD)
    back_up(registry, tmp_path / "backup")
    damage(tmp_path / "backup" / MODEL_NAME / OLD / MODEL_FILE)
    (registry.root / MODEL_NAME / OLD / MODEL_FILE).unlink()

    results = restore(registry, tmp_path / "backup")

    assert outcomes(results) == {OLD: Outcome.FAILED}
    assert [r.outcome for r in verify_registry(registry)] == [Outcome.FAILED]


def test_restore_puts_missing_versions_back_into_a_bucket(
    s3_store: S3Store, tmp_path: Path
) -> None:
    write_version(tmp_path / "backup", OLD)
    write_version(tmp_path / "backup", NEW, seed=2)
    keep_version(s3_store, write_version(tmp_path / "written", OLD))

    results = restore(s3_store, tmp_path / "backup")

    assert outcomes(results) == {OLD: Outcome.ALREADY_GOOD, NEW: Outcome.COPIED}
    assert s3_store.version_names(MODEL_NAME) == [OLD, NEW]
    assert all(r.outcome is Outcome.ALREADY_GOOD for r in verify_registry(s3_store))


def test_no_serving_pointer_means_no_serving_model(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    write_version(tmp_path, OLD)

    assert read_serving(store, MODEL_NAME) is None
    assert load_serving_model(store, MODEL_NAME, tmp_path / "cache") is None


def test_the_serving_model_loads_from_a_bucket_through_a_local_copy(
    s3_store: S3Store, tmp_path: Path
) -> None:
    old = keep_version(s3_store, write_version(tmp_path / "written", OLD))
    keep_version(s3_store, write_version(tmp_path / "written", NEW, seed=2))
    write_serving(s3_store, old.manifest)

    serving = load_serving_model(s3_store, MODEL_NAME, tmp_path / "cache")

    assert serving is not None
    assert serving.manifest.version == OLD
    history = torch.tensor([[0, 0, 1, 2]])
    expected = load_model_version(old.directory).scores(history)
    assert torch.equal(serving.scores(history), expected)
    assert serving.scores(history).shape == (1, 6)
    assert serving.metadata.max_len == MAX_LEN


def test_a_serving_pointer_whose_digest_differs_is_refused(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    old = write_version(tmp_path, OLD)
    write_serving(store, write_version(tmp_path / "other", OLD, seed=5).manifest)

    with pytest.raises(ArtifactIntegrityError):
        load_serving_model(store, MODEL_NAME, tmp_path)
    assert read_serving(store, MODEL_NAME).sha256 != old.manifest.sha256  # type: ignore[union-attr]


def test_verify_exits_1_and_names_the_damaged_version(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("RECOPS_STATE_DIR", str(tmp_path))
    write_version(tmp_path / "registry", OLD)
    damaged = write_version(tmp_path / "registry", NEW, seed=2)
    damage(damaged.model_path)

    status = main(["registry", "verify"])

    out = capsys.readouterr().out
    assert status == 1
    assert f"bad version(s): {NEW}" in out
    assert f"{OLD} already good" in out


def test_list_marks_the_serving_version(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("RECOPS_STATE_DIR", str(tmp_path))
    old = write_version(tmp_path / "registry", OLD)
    write_version(tmp_path / "registry", NEW, seed=2)
    write_serving(LocalStore(tmp_path / "registry"), old.manifest)

    status = main(["registry", "list"])

    lines = capsys.readouterr().out.splitlines()
    assert status == 0
    assert [line.split()[1] for line in lines] == [OLD, NEW]
    assert lines[0].endswith("serving") and not lines[1].endswith("serving")


def test_backup_and_restore_through_the_command_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RECOPS_STATE_DIR", str(tmp_path))
    stored = write_version(tmp_path / "registry", OLD)

    backed_up = main(["registry", "backup", "--to", str(tmp_path / "b.tar")])
    damage(stored.model_path)
    restored = main(["registry", "restore", "--from", str(tmp_path / "b.tar")])

    assert (backed_up, restored) == (0, 0)
    assert load_model_version(stored.directory).manifest.version == OLD


@pytest.mark.parametrize(
    "argv",
    [
        ["registry", "restore", "--from", "{tmp}/no-such-backup"],
        ["registry", "restore", "--from", "{tmp}/not-a-tar.txt"],
        ["registry", "backup", "--to", "{tmp}/no-such-dir/backup"],
    ],
)
def test_a_backup_or_restore_given_a_bad_path_exits_2(
    argv: list[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("RECOPS_STATE_DIR", str(tmp_path))
    (tmp_path / "not-a-tar.txt").write_text("hello")

    status = main([arg.format(tmp=tmp_path) for arg in argv])

    assert status == 2
    assert "python -m trainer registry:" in capsys.readouterr().err
