"""Model versions in the registry: how they are written, and read back.

Layout, one directory per version, never changed once in place::

    <registry>/<model_name>/<version>/
        model.pt        TorchScript module with a ``recops.json`` extra file
        triton/         a Triton model repository, see :mod:`trainer.triton_export`
        manifest.json   every file's digest and size, metrics, snapshot id, config

``version`` reads ``20261203T190102Z-1a2b3c4d``: creation time in UTC, then
eight random hex digits. A version is written into a hidden staging
directory (``.staging-...``) and renamed into place only once every file is
complete and synced, so a directory named like a version is always whole.
Remote stores (:mod:`trainer.storage`) keep the same promise by writing the
manifest last.

``model.pt``, saved with ``torch.jit.save(module, path, _extra_files=...)``:

- ``forward(item_seq: LongTensor[B, L]) -> FloatTensor[B, V]``: ``L`` is
  ``max_len``; each row holds catalogue indices of a customer's purchases,
  oldest first, left-padded with 0; the result scores every index 0..V-1 for
  the next purchase, higher is better. Index 0 is padding and always scores
  :data:`trainer.model.PADDING_SCORE` (-1e9), below any product.
- ``recops.json``: ``{"format": 1, "model_name", "version", "max_len",
  "item_ids": [V stock codes, index 0 is ""], "item_descriptions": [V],
  "popular_items": [item indices, most purchased in training first, <= 500]}``.

``manifest.json``, format 2: ``{"format": 2, "model_name", "version",
"created_at" (ISO 8601, UTC), "snapshot_id", "model_file": "model.pt",
"sha256" and "size_bytes" of model.pt, "files" (every file of the version
but the manifest, by path relative to the version directory, to
``{"sha256", "size_bytes"}``), "item_count" (V), "max_len", "metrics" (name
to number, as in ModelReady), "config" (the training hyperparameters),
"training" (seconds, epochs, best_epoch, stop_reason)}``. Format 1 lacked
``files``; such manifests still load, as listing ``model.pt`` alone.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import unquote, urlparse

import torch

from trainer.errors import ArtifactError, ArtifactIntegrityError
from trainer.torchscript import deprecation_silenced
from trainer.triton_export import write_triton_repository

logger = logging.getLogger(__name__)

FORMAT = 1
MANIFEST_FORMAT = 2
READABLE_MANIFEST_FORMATS = (1, 2)
MODEL_NAME = "sequential-recommender"
MODEL_FILE = "model.pt"
MANIFEST_FILE = "manifest.json"
METADATA_FILE = "recops.json"
STAGING_PREFIX = ".staging-"
POPULAR_ITEMS_LIMIT = 500
_CHUNK_BYTES = 1 << 20


@dataclasses.dataclass(frozen=True, kw_only=True)
class ModelMetadata:
    """What a server needs beside the weights: the catalogue and its order."""

    model_name: str
    version: str
    max_len: int
    item_ids: list[str]
    item_descriptions: list[str]
    popular_items: list[int]

    def to_json(self) -> str:
        return json.dumps({"format": FORMAT, **dataclasses.asdict(self)})

    @classmethod
    def from_json(cls, text: str) -> ModelMetadata:
        try:
            fields = json.loads(text)
            if fields.pop("format") != FORMAT:
                raise ArtifactError(f"unknown {METADATA_FILE} format")
            return cls(**fields)
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            raise ArtifactError(f"unreadable {METADATA_FILE}: {exc}") from exc


@dataclasses.dataclass(frozen=True, kw_only=True)
class FileRecord:
    """What one file of a version must hash to, and how long it is."""

    sha256: str
    size_bytes: int


@dataclasses.dataclass(frozen=True, kw_only=True)
class ModelManifest:
    """The registry's record of one model version."""

    model_name: str
    version: str
    created_at: str
    snapshot_id: str
    sha256: str
    size_bytes: int
    item_count: int
    max_len: int
    metrics: dict[str, float]
    config: dict[str, int | float]
    training: dict[str, int | float | str]
    code_version: str = ""
    model_file: str = MODEL_FILE
    files: dict[str, FileRecord] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.files:
            record = FileRecord(sha256=self.sha256, size_bytes=self.size_bytes)
            self.files[self.model_file] = record
        if any(not _is_plain_relative(name) for name in self.files):
            raise ArtifactError(f"{MANIFEST_FILE} names a file outside the version")

    def to_json(self) -> str:
        fields = {"format": MANIFEST_FORMAT, **dataclasses.asdict(self)}
        return json.dumps(fields, indent=2)

    @classmethod
    def from_json(cls, text: str | bytes) -> ModelManifest:
        """Read a manifest of any readable format; format 1 lists model.pt only."""
        try:
            fields = json.loads(text)
            if fields.pop("format") not in READABLE_MANIFEST_FORMATS:
                raise ArtifactError(f"unknown {MANIFEST_FILE} format")
            files = {
                name: FileRecord(**record)
                for name, record in fields.pop("files", {}).items()
            }
            return cls(**fields, files=files)
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            raise ArtifactError(f"unreadable {MANIFEST_FILE}: {exc}") from exc


def _is_plain_relative(name: str) -> bool:
    parts = name.split("/")
    return bool(name) and not name.startswith("/") and ".." not in parts


@dataclasses.dataclass(frozen=True)
class StoredModel:
    """A model version in place in the registry.

    ``directory`` is a local copy; ``artifact_uri`` names ``model.pt`` in a
    remote store when the registry is not on this machine.
    """

    directory: Path
    manifest: ModelManifest
    artifact_uri: str | None = None

    @property
    def model_path(self) -> Path:
        return self.directory / self.manifest.model_file

    @property
    def uri(self) -> str:
        """URI of ``model.pt``, as ModelReady carries it: remote, else file://."""
        if self.artifact_uri is not None:
            return self.artifact_uri
        return self.model_path.resolve().as_uri()


def code_version(env: Mapping[str, str] | None = None) -> str:
    """The code that trains: ``RECOPS_CODE_VERSION`` if set (images set it),
    else the checkout's git commit, ``-dirty`` with local changes, else
    ``unknown``."""
    env = os.environ if env is None else env
    if env.get("RECOPS_CODE_VERSION"):
        return env["RECOPS_CODE_VERSION"]
    repo = Path(__file__).resolve().parents[2]
    try:
        commit = subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
        changes = subprocess.run(
            ["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{commit}-dirty" if changes else commit


def new_version(now: datetime | None = None) -> str:
    """A fresh version name: UTC time, then eight random hex digits."""
    now = datetime.now(UTC) if now is None else now.astimezone(UTC)
    return f"{now:%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"


def file_digest(path: Path) -> tuple[str, int]:
    """SHA-256 (hex) and size in bytes of a file."""
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as file:
        while chunk := file.read(_CHUNK_BYTES):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


@contextlib.contextmanager
def staged_version(
    registry_dir: Path, model_name: str, version: str, *, replace: bool = False
) -> Iterator[Path]:
    """A staging directory that becomes ``<model_name>/<version>`` on success.

    Whatever the block writes is synced and renamed into place in one step
    when it ends normally; if it raises, the staging directory is removed and
    no version directory appears. An existing version is refused unless
    ``replace``: then it is renamed aside just before the new one moves in,
    and removed after.
    """
    parent = registry_dir / model_name
    final = parent / version
    if final.exists() and not replace:
        raise ArtifactError(f"model version {version} already exists")
    parent.mkdir(parents=True, exist_ok=True)
    token = uuid.uuid4().hex[:8]
    staging = parent / f"{STAGING_PREFIX}{version}-{token}"
    staging.mkdir()
    aside = parent / f"{STAGING_PREFIX}{version}-{token}-replaced"
    try:
        yield staging
        _sync_tree(staging)
        if final.exists():
            os.rename(final, aside)
        os.rename(staging, final)
        sync_directory(parent)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    shutil.rmtree(aside, ignore_errors=True)


def version_files(directory: Path) -> dict[str, FileRecord]:
    """Digest and size of every file under a version directory but the manifest."""
    files = {}
    for path in sorted(directory.rglob("*")):
        name = path.relative_to(directory).as_posix()
        if path.is_file() and name != MANIFEST_FILE:
            sha256, size_bytes = file_digest(path)
            files[name] = FileRecord(sha256=sha256, size_bytes=size_bytes)
    return files


def write_model_version(
    registry_dir: Path,
    module: torch.jit.ScriptModule,
    metadata: ModelMetadata,
    *,
    snapshot_id: str,
    metrics: Mapping[str, float],
    config: Mapping[str, int | float],
    training: Mapping[str, int | float | str],
    created_at: datetime,
    code_version: str = "",
) -> StoredModel:
    """Save ``module`` and its manifest as a new version, all or nothing."""
    try:
        with staged_version(
            registry_dir, metadata.model_name, metadata.version
        ) as staging:
            model_path = staging / MODEL_FILE
            with deprecation_silenced():
                torch.jit.save(
                    module,
                    str(model_path),
                    _extra_files={METADATA_FILE: metadata.to_json()},
                )
            write_triton_repository(
                staging,
                module,
                model_name=metadata.model_name,
                max_len=metadata.max_len,
                item_count=len(metadata.item_ids),
            )
            files = version_files(staging)
            sha256, size_bytes = files[MODEL_FILE].sha256, files[MODEL_FILE].size_bytes
            manifest = ModelManifest(
                model_name=metadata.model_name,
                version=metadata.version,
                created_at=created_at.astimezone(UTC).isoformat(),
                snapshot_id=snapshot_id,
                sha256=sha256,
                size_bytes=size_bytes,
                item_count=len(metadata.item_ids),
                max_len=metadata.max_len,
                metrics=dict(metrics),
                config=dict(config),
                training=dict(training),
                code_version=code_version,
                files=files,
            )
            (staging / MANIFEST_FILE).write_text(manifest.to_json())
    except OSError as exc:
        raise ArtifactError(f"cannot write model version: {exc}") from exc

    stored = StoredModel(
        registry_dir / metadata.model_name / metadata.version, manifest
    )
    logger.info(
        "stored model version %s",
        metadata.version,
        extra={"model_version": metadata.version, "sha256": sha256, "size": size_bytes},
    )
    return stored


def list_versions(registry_dir: Path, model_name: str = MODEL_NAME) -> list[Path]:
    """Complete version directories of a model, oldest name first."""
    parent = registry_dir / model_name
    if not parent.is_dir():
        return []
    return sorted(
        path
        for path in parent.iterdir()
        if path.is_dir()
        and not path.name.startswith(".")
        and (path / MANIFEST_FILE).is_file()
    )


@dataclasses.dataclass(frozen=True)
class LoadedModel:
    """A verified model version, ready to score."""

    module: torch.jit.ScriptModule
    metadata: ModelMetadata
    manifest: ModelManifest

    def scores(self, item_seq: torch.Tensor) -> torch.Tensor:
        """Scores ``[B, V]`` for left-padded histories ``[B, max_len]``."""
        with torch.inference_mode():
            result: torch.Tensor = self.module(item_seq)
        return result


def load_model_version(
    directory: Path,
    *,
    expected_sha256: str | None = None,
    expected_size_bytes: int | None = None,
) -> LoadedModel:
    """Load a version directory, checking digest, size and a trial scoring.

    ``expected_*`` come from a ModelReady event; without them the manifest is
    the reference. Raises :class:`ArtifactIntegrityError` on any mismatch.
    """
    try:
        manifest = ModelManifest.from_json((directory / MANIFEST_FILE).read_text())
    except OSError as exc:
        raise ArtifactError(f"no readable manifest in {directory}") from exc
    model_path = directory / manifest.model_file
    _verify_digest(model_path, manifest, expected_sha256, expected_size_bytes)
    problems = version_problems(directory, manifest)
    if problems:
        raise ArtifactIntegrityError(f"{directory}: {'; '.join(problems)}")

    extra_files = {METADATA_FILE: ""}
    try:
        with deprecation_silenced():
            module = torch.jit.load(  # type: ignore[no-untyped-call]
                str(model_path), _extra_files=extra_files
            )
    except RuntimeError as exc:
        raise ArtifactIntegrityError(f"{model_path} is not TorchScript") from exc
    module.eval()
    metadata = ModelMetadata.from_json(extra_files[METADATA_FILE])
    loaded = LoadedModel(module=module, metadata=metadata, manifest=manifest)
    _smoke_check(loaded)
    return loaded


def load_model_uri(
    uri: str,
    *,
    expected_sha256: str | None = None,
    expected_size_bytes: int | None = None,
) -> LoadedModel:
    """Load the version whose ``model.pt`` a ``file://`` URI names."""
    parsed = urlparse(uri)
    if parsed.scheme != "file":
        raise ArtifactError(f"unsupported artifact URI scheme: {uri}")
    model_path = Path(unquote(parsed.path))
    return load_model_version(
        model_path.parent,
        expected_sha256=expected_sha256,
        expected_size_bytes=expected_size_bytes,
    )


def version_problems(directory: Path, manifest: ModelManifest) -> list[str]:
    """What is missing or changed among the files the manifest lists."""
    problems = []
    for name, record in manifest.files.items():
        try:
            sha256, size_bytes = file_digest(directory / name)
        except OSError as exc:
            problems.append(f"{name} unreadable: {exc.strerror}")
            continue
        if (sha256, size_bytes) != (record.sha256, record.size_bytes):
            problems.append(f"{name} has sha256 {sha256} and {size_bytes} bytes")
    return problems


def _verify_digest(
    model_path: Path,
    manifest: ModelManifest,
    expected_sha256: str | None,
    expected_size_bytes: int | None,
) -> None:
    try:
        sha256, size_bytes = file_digest(model_path)
    except OSError as exc:
        raise ArtifactIntegrityError(f"cannot read {model_path}") from exc
    wanted_sha = manifest.sha256 if expected_sha256 is None else expected_sha256
    wanted_size = (
        manifest.size_bytes if expected_size_bytes is None else expected_size_bytes
    )
    if sha256 != manifest.sha256 or sha256 != wanted_sha:
        raise ArtifactIntegrityError(f"{model_path} has sha256 {sha256}")
    if size_bytes != manifest.size_bytes or size_bytes != wanted_size:
        raise ArtifactIntegrityError(f"{model_path} has {size_bytes} bytes")


def _smoke_check(loaded: LoadedModel) -> None:
    """Score two histories: the shape must match and every score be finite."""
    metadata = loaded.metadata
    item_count = len(metadata.item_ids)
    if item_count != loaded.manifest.item_count or item_count < 2:
        raise ArtifactIntegrityError("the catalogue size disagrees with the manifest")
    probe = torch.zeros(2, metadata.max_len, dtype=torch.long)
    probe[0, -1] = 1
    probe[1, :] = torch.arange(metadata.max_len) % (item_count - 1) + 1
    try:
        scores = loaded.scores(probe)
    except RuntimeError as exc:
        raise ArtifactIntegrityError(f"the model fails to score: {exc}") from exc
    if tuple(scores.shape) != (2, item_count):
        raise ArtifactIntegrityError(f"scores have shape {tuple(scores.shape)}")
    if not bool(torch.isfinite(scores).all()):
        raise ArtifactIntegrityError("the model gives scores that are not finite")
    if bool((scores[:, 0:1] >= scores[:, 1:]).any()):
        raise ArtifactIntegrityError("padding scores as high as a product")


def _sync_tree(directory: Path) -> None:
    for path in directory.iterdir():
        if path.is_dir():
            _sync_tree(path)
            continue
        with open(path, "rb") as file:
            os.fsync(file.fileno())
    sync_directory(directory)


def sync_directory(directory: Path) -> None:
    """Make a directory's entries (renames, new files) durable."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
