"""The model registry's operations: keep, fetch, verify, back up, restore.

Each works on any :class:`~trainer.storage.ArtifactStore`. A version is
*good* when its manifest reads and every file it lists has the listed
sha256 and size. Nothing here ever replaces a good version.

The serving pointer, ``<model_name>/SERVING``, names the version the shop
is served from: ``{"format": 1, "model_name", "version", "sha256" (of
model.pt), "updated_at"}``. It is written in one step, and only for a
version that passed the quality gate and whose ModelReady the cluster
acknowledged.

Backups share the registry's layout, in a directory or in a tar of one
(``.tar``, or gzipped ``.tar.gz`` or ``.tgz``).
"""

from __future__ import annotations

import dataclasses
import enum
import json
import logging
import os
import tarfile
import tempfile
import zlib
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from trainer.artifact import (
    MANIFEST_FILE,
    LoadedModel,
    ModelManifest,
    StoredModel,
    load_model_version,
    staged_version,
    version_problems,
)
from trainer.errors import ArtifactError, ArtifactIntegrityError
from trainer.settings import TrainerSettings
from trainer.storage import ArtifactStore, LocalStore, open_store, version_key

logger = logging.getLogger(__name__)

SERVING_FILE = "SERVING"
POINTER_FORMAT = 1


def store_for(settings: TrainerSettings) -> ArtifactStore:
    """The store the trainer's settings name."""
    return open_store(settings.registry_uri, s3_endpoint_url=settings.s3_endpoint_url)


def read_manifest(store: ArtifactStore, model_name: str, version: str) -> ModelManifest:
    """A version's manifest; ArtifactError when it is absent or unreadable."""
    data = store.read_bytes(version_key(model_name, version, MANIFEST_FILE))
    if data is None:
        raise ArtifactError(f"no model version {model_name}/{version}")
    return ModelManifest.from_json(data)


def verify_version(store: ArtifactStore, model_name: str, version: str) -> list[str]:
    """What is wrong with a stored version; empty when it is good."""
    try:
        manifest = read_manifest(store, model_name, version)
    except ArtifactError as exc:
        return [str(exc)]
    if (manifest.model_name, manifest.version) != (model_name, version):
        return [f"manifest names {manifest.model_name}/{manifest.version}"]
    problems = []
    for name, record in manifest.files.items():
        try:
            digest = store.digest(version_key(model_name, version, name))
        except ArtifactError as exc:
            problems.append(f"{name} unreadable: {exc}")
            continue
        if digest != (record.sha256, record.size_bytes):
            problems.append(f"{name} has sha256 {digest[0]} and {digest[1]} bytes")
    return problems


def keep_version(store: ArtifactStore, stored: StoredModel) -> StoredModel:
    """Put a locally written version into the store; its URI names the store's copy.

    A no-op for a local store that already holds the directory.
    """
    manifest = stored.manifest
    store.put_version(stored.directory, manifest)
    model_key = version_key(manifest.model_name, manifest.version, manifest.model_file)
    return dataclasses.replace(stored, artifact_uri=store.key_uri(model_key))


def fetch_version(
    store: ArtifactStore, model_name: str, version: str, local_root: Path
) -> Path:
    """A verified local copy of a version, at ``local_root/<model>/<version>``.

    A good copy already there is used as it is; otherwise the version is
    downloaded into staging, checked against its manifest, and renamed in.
    """
    manifest = read_manifest(store, model_name, version)
    local = local_root / model_name / version
    if _is_good_copy(local, manifest):
        return local
    with staged_version(local_root, model_name, version, replace=True) as staging:
        for name in manifest.files:
            (staging / name).parent.mkdir(parents=True, exist_ok=True)
            store.download(version_key(model_name, version, name), staging / name)
        problems = version_problems(staging, manifest)
        if problems:
            raise ArtifactIntegrityError(f"{version}: {'; '.join(problems)}")
        (staging / MANIFEST_FILE).write_text(manifest.to_json())
    return local


def _is_good_copy(local: Path, manifest: ModelManifest) -> bool:
    try:
        copy = ModelManifest.from_json((local / MANIFEST_FILE).read_bytes())
    except (OSError, ArtifactError):
        return False
    return copy.files == manifest.files and not version_problems(local, manifest)


@dataclasses.dataclass(frozen=True, kw_only=True)
class ServingPointer:
    """Which version serves the shop, and the digest it was accepted with."""

    model_name: str
    version: str
    sha256: str
    updated_at: str

    def to_json(self) -> str:
        return json.dumps({"format": POINTER_FORMAT, **dataclasses.asdict(self)})

    @classmethod
    def from_json(cls, text: bytes) -> ServingPointer:
        try:
            fields = json.loads(text)
            if fields.pop("format") != POINTER_FORMAT:
                raise ArtifactError(f"unknown {SERVING_FILE} format")
            return cls(**fields)
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            raise ArtifactError(f"unreadable {SERVING_FILE}: {exc}") from exc


def read_serving(store: ArtifactStore, model_name: str) -> ServingPointer | None:
    """The serving pointer of a model; None before any version passed the gate."""
    data = store.read_bytes(f"{model_name}/{SERVING_FILE}")
    return None if data is None else ServingPointer.from_json(data)


def write_serving(
    store: ArtifactStore, manifest: ModelManifest, *, now: datetime | None = None
) -> ServingPointer:
    """Point the model at an accepted, acknowledged version, in one step."""
    pointer = ServingPointer(
        model_name=manifest.model_name,
        version=manifest.version,
        sha256=manifest.sha256,
        updated_at=(now or datetime.now(UTC)).astimezone(UTC).isoformat(),
    )
    store.write_bytes(
        f"{manifest.model_name}/{SERVING_FILE}", pointer.to_json().encode()
    )
    logger.info(
        "serving pointer moved",
        extra={"model_name": manifest.model_name, "model_version": manifest.version},
    )
    return pointer


def load_serving_model(
    store: ArtifactStore, model_name: str, local_root: Path
) -> LoadedModel | None:
    """The serving version, verified and loaded; None when nothing serves yet.

    Raises ArtifactError when the pointer names a version that is missing or
    whose model.pt is not the one accepted.
    """
    pointer = read_serving(store, model_name)
    if pointer is None:
        return None
    directory = fetch_version(store, model_name, pointer.version, local_root)
    return load_model_version(directory, expected_sha256=pointer.sha256)


class Outcome(enum.StrEnum):
    """What a backup or restore did with one version."""

    COPIED = "copied"
    ALREADY_GOOD = "already good"
    REPAIRED = "repaired"
    FAILED = "failed"


@dataclasses.dataclass(frozen=True)
class VersionOutcome:
    """One version's outcome, with the problems that made it fail."""

    model_name: str
    version: str
    outcome: Outcome
    problems: tuple[str, ...] = ()


def verify_registry(store: ArtifactStore) -> Iterator[VersionOutcome]:
    """Every complete version of every model, checked file by file.

    The serving version is checked too when its manifest is gone, which
    leaves it out of the complete versions: the shop is served from it. An
    unreadable serving pointer fails as the version named ``SERVING``.
    """
    for model_name in store.model_names():
        versions = store.version_names(model_name)
        try:
            pointer = read_serving(store, model_name)
        except ArtifactError as exc:
            pointer = None
            yield VersionOutcome(model_name, SERVING_FILE, Outcome.FAILED, (str(exc),))
        if pointer is not None and pointer.version not in versions:
            versions = sorted([*versions, pointer.version])
        for version in versions:
            problems = verify_version(store, model_name, version)
            outcome = Outcome.FAILED if problems else Outcome.ALREADY_GOOD
            yield VersionOutcome(model_name, version, outcome, tuple(problems))


def back_up(store: ArtifactStore, destination: Path) -> list[VersionOutcome]:
    """Copy every good version, and each serving pointer, to a directory or tar.

    A directory is filled incrementally; a tar (``.tar``, ``.tar.gz``,
    ``.tgz``) is written whole under
    a temporary name and renamed into place, and must not exist yet.
    """
    if not destination.parent.is_dir():
        raise FileNotFoundError(f"{destination.parent} is not a directory")
    if _is_tar(destination):
        if destination.exists():
            raise FileExistsError(f"{destination} exists; back up to a new name")
        with tempfile.TemporaryDirectory(dir=destination.parent) as building:
            outcomes = _back_up_into(store, Path(building))
            _write_tar(Path(building), destination)
        return outcomes
    return _back_up_into(store, destination)


def _back_up_into(store: ArtifactStore, root: Path) -> list[VersionOutcome]:
    backup = LocalStore(root)
    outcomes = []
    for model_name in store.model_names():
        for version in store.version_names(model_name):
            outcomes.append(_copy_out(store, backup, model_name, version))
        pointer = store.read_bytes(f"{model_name}/{SERVING_FILE}")
        if pointer is not None:
            backup.write_bytes(f"{model_name}/{SERVING_FILE}", pointer)
    return outcomes


def _copy_out(
    store: ArtifactStore, backup: LocalStore, model_name: str, version: str
) -> VersionOutcome:
    in_backup = version in backup.version_names(model_name)
    if in_backup and not verify_version(backup, model_name, version):
        return VersionOutcome(model_name, version, Outcome.ALREADY_GOOD)
    try:
        fetch_version(store, model_name, version, backup.root)
    except ArtifactError as exc:
        logger.error(
            "model version not backed up: %s", exc, extra={"model_version": version}
        )
        return VersionOutcome(model_name, version, Outcome.FAILED, (str(exc),))
    return VersionOutcome(model_name, version, Outcome.COPIED)


def restore(store: ArtifactStore, source: Path) -> list[VersionOutcome]:
    """Put back every version the registry lacks or holds damaged.

    Each backed-up version is checked against its own manifest first; a
    good version in the registry is never touched. A serving pointer is put
    back only where the registry has none and its version is good.
    """
    if not source.exists():
        raise FileNotFoundError(f"{source} does not exist")
    if source.is_dir():
        return _restore_from(store, LocalStore(source))
    if not tarfile.is_tarfile(source):
        raise ValueError(f"{source} is neither a directory nor a tar file")
    with tempfile.TemporaryDirectory() as unpacked:
        _unpack(source, Path(unpacked))
        return _restore_from(store, LocalStore(Path(unpacked)))


def _unpack(source: Path, destination: Path) -> None:
    """Extract a backup tar; a cut-off or damaged one is a ValueError."""
    try:
        with tarfile.open(source) as archive:
            archive.extractall(destination, filter="data")
    except (EOFError, zlib.error) as exc:
        raise ValueError(f"{source} is damaged: {exc}") from exc


def _restore_from(store: ArtifactStore, backup: LocalStore) -> list[VersionOutcome]:
    outcomes = []
    for model_name in backup.model_names():
        for version in backup.version_names(model_name):
            outcomes.append(_put_back(store, backup, model_name, version))
        _restore_pointer(store, backup, model_name)
    return outcomes


def _put_back(
    store: ArtifactStore, backup: LocalStore, model_name: str, version: str
) -> VersionOutcome:
    present = version in store.version_names(model_name)
    if present and not verify_version(store, model_name, version):
        return VersionOutcome(model_name, version, Outcome.ALREADY_GOOD)
    problems = verify_version(backup, model_name, version)
    if problems:
        return VersionOutcome(model_name, version, Outcome.FAILED, tuple(problems))
    manifest = read_manifest(backup, model_name, version)
    try:
        # Replacing is safe here: the registry's copy is missing or damaged.
        store.put_version(backup.root / model_name / version, manifest, replace=True)
    except ArtifactError as exc:
        return VersionOutcome(model_name, version, Outcome.FAILED, (str(exc),))
    logger.info(
        "model version restored",
        extra={"model_version": version, "replaced_damaged": present},
    )
    return VersionOutcome(
        model_name, version, Outcome.REPAIRED if present else Outcome.COPIED
    )


def _restore_pointer(store: ArtifactStore, backup: LocalStore, model_name: str) -> None:
    key = f"{model_name}/{SERVING_FILE}"
    saved = backup.read_bytes(key)
    if saved is None or store.read_bytes(key) is not None:
        return
    pointer = ServingPointer.from_json(saved)
    if not verify_version(store, model_name, pointer.version):
        store.write_bytes(key, saved)


def _is_tar(path: Path) -> bool:
    return _tar_mode(path) is not None


def _tar_mode(path: Path) -> Literal["w", "w:gz"] | None:
    """How to write a backup named ``path``: plain or gzipped tar, or None."""
    name = path.name
    if name.endswith((".tar.gz", ".tgz")):
        return "w:gz"
    return "w" if name.endswith(".tar") else None


def _write_tar(root: Path, destination: Path) -> None:
    partial = destination.with_name(f".{destination.name}.partial")
    try:
        with tarfile.open(partial, _tar_mode(destination) or "w") as archive:
            for entry in sorted(root.iterdir()):
                archive.add(entry, arcname=entry.name)
        with open(partial, "rb") as file:
            os.fsync(file.fileno())
        os.rename(partial, destination)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
