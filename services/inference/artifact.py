"""Model artifacts: find, verify, load and smoke-test one, or write one.

An artifact is ``model.pt``, a TorchScript module saved with a ``recops.json``
extra file (format 1, see ``notes/interfaces.md``). Nothing reaches the model
holder unless its bytes match the size and sha256 that ModelReady announced,
its metadata is whole and consistent, and it scores a probe batch with the
right shape and finite values.

``file://`` artifacts are read in place. ``s3://bucket/key`` artifacts are
downloaded into a local cache as ``<sha256>.pt``, renamed in only once their
digest matches, and reused while it does; boto3 finds credentials and an
S3-compatible endpoint (``AWS_ENDPOINT_URL_S3``) the standard way.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io
import json
import logging
import os
import tempfile
import uuid
import warnings
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import boto3
import torch
from botocore.exceptions import BotoCoreError, ClientError

from eventbus.contracts import ModelReady
from inference.errors import ArtifactRejectedError, RejectionReason
from inference.model import PADDING_INDEX, ServingModel, TorchScriptScorer

logger = logging.getLogger(__name__)

ARTIFACT_FORMAT = 1
METADATA_FILE = "recops.json"
MAX_POPULAR_ITEMS = 500
DEFAULT_CACHE_DIR = Path(tempfile.gettempdir()) / "recops-artifact-cache"


@dataclasses.dataclass(frozen=True, kw_only=True)
class ArtifactMetadata:
    """What ``recops.json`` says about the module beside it."""

    model_name: str
    version: str
    max_len: int
    item_ids: tuple[str, ...]
    item_descriptions: tuple[str, ...]
    popular_items: tuple[int, ...]

    @classmethod
    def from_json(cls, text: bytes | str) -> ArtifactMetadata:
        """Parse and check ``recops.json``; refuse anything inconsistent."""
        try:
            fields = json.loads(text)
            if fields.get("format") != ARTIFACT_FORMAT:
                raise ValueError(f"format is {fields.get('format')!r}, not 1")
            metadata = cls(
                model_name=str(fields["model_name"]),
                version=str(fields["version"]),
                max_len=int(fields["max_len"]),
                item_ids=tuple(str(item) for item in fields["item_ids"]),
                item_descriptions=tuple(str(d) for d in fields["item_descriptions"]),
                popular_items=tuple(int(i) for i in fields["popular_items"]),
            )
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            raise ArtifactRejectedError(
                RejectionReason.INVALID_METADATA, repr(exc)
            ) from None
        metadata.check()
        return metadata

    def check(self) -> None:
        """Refuse metadata a server could not rank items with."""
        problem = _metadata_problem(self)
        if problem:
            raise ArtifactRejectedError(RejectionReason.INVALID_METADATA, problem)

    def to_json(self) -> str:
        """``recops.json`` text for this metadata."""
        fields = {"format": ARTIFACT_FORMAT, **dataclasses.asdict(self)}
        return json.dumps(fields)


def _metadata_problem(metadata: ArtifactMetadata) -> str | None:
    item_ids = metadata.item_ids
    if metadata.max_len < 1:
        return f"max_len must be at least 1, got {metadata.max_len}"
    if len(item_ids) < 2 or item_ids[PADDING_INDEX] != "":
        return "item_ids must start with the padding entry '' and list items"
    if len(metadata.item_descriptions) != len(item_ids):
        return "item_descriptions and item_ids differ in length"
    if "" in item_ids[1:] or len(set(item_ids)) != len(item_ids):
        return "item_ids must be distinct and non-empty after the padding entry"
    if len(metadata.popular_items) > MAX_POPULAR_ITEMS:
        return f"popular_items lists more than {MAX_POPULAR_ITEMS} items"
    if any(not 0 < i < len(item_ids) for i in metadata.popular_items):
        return "popular_items must be item indices other than padding"
    return None


def artifact_path(uri: str) -> Path:
    """The local file a ``file://`` artifact URI names."""
    parsed = urlparse(uri)
    if parsed.scheme != "file" or parsed.netloc not in ("", "localhost"):
        raise ArtifactRejectedError(
            RejectionReason.UNSUPPORTED_URI, f"cannot fetch {uri!r}"
        )
    path = Path(unquote(parsed.path))
    if not path.is_absolute():
        raise ArtifactRejectedError(
            RejectionReason.UNSUPPORTED_URI, f"{uri!r} is not absolute"
        )
    return path


def fetch_s3_artifact(
    ready: ModelReady, cache_dir: Path = DEFAULT_CACHE_DIR, s3_client: Any = None
) -> Path:
    """A local copy of an ``s3://`` artifact whose digest matches the announcement.

    A download that does not match is deleted and refused; the cache never
    holds a file under a digest it does not have.
    """
    parsed = urlparse(ready.artifact_uri)
    if parsed.scheme != "s3" or not parsed.netloc:
        raise ArtifactRejectedError(
            RejectionReason.UNSUPPORTED_URI, f"{ready.artifact_uri!r} is not s3://"
        )
    cached = cache_dir / f"{ready.sha256.lower()}.pt"
    if cached.is_file() and _digest_of(cached) == (
        ready.sha256.lower(),
        ready.size_bytes,
    ):
        return cached
    cache_dir.mkdir(parents=True, exist_ok=True)
    partial = cache_dir / f".{cached.name}-{uuid.uuid4().hex[:8]}.partial"
    try:
        client = s3_client if s3_client is not None else boto3.client("s3")
        client.download_file(parsed.netloc, unquote(parsed.path[1:]), str(partial))
        _check_digest(partial, ready)
        os.replace(partial, cached)
    except (ClientError, BotoCoreError) as exc:
        raise ArtifactRejectedError(
            RejectionReason.MISSING, f"{ready.artifact_uri}: {exc}", retriable=True
        ) from None
    finally:
        partial.unlink(missing_ok=True)
    return cached


def _digest_of(path: Path) -> tuple[str, int]:
    data = path.read_bytes()
    return hashlib.sha256(data).hexdigest(), len(data)


def read_verified(ready: ModelReady, *, cache_dir: Path = DEFAULT_CACHE_DIR) -> bytes:
    """The artifact's bytes, once their size and sha256 match the announcement."""
    if urlparse(ready.artifact_uri).scheme == "s3":
        path = fetch_s3_artifact(ready, cache_dir)
    else:
        path = artifact_path(ready.artifact_uri)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ArtifactRejectedError(
            RejectionReason.MISSING, f"{path}: {exc.strerror}"
        ) from None
    _check_bytes(data, path, ready)
    return data


def _check_digest(path: Path, ready: ModelReady) -> None:
    _check_bytes(path.read_bytes(), path, ready)


def _check_bytes(data: bytes, path: Path, ready: ModelReady) -> None:
    if len(data) != ready.size_bytes:
        detail = f"{path} holds {len(data)} bytes, {ready.size_bytes} announced"
        raise ArtifactRejectedError(RejectionReason.SIZE_MISMATCH, detail)
    digest = hashlib.sha256(data).hexdigest()
    if digest != ready.sha256.lower():
        detail = f"{path} has sha256 {digest}, {ready.sha256} announced"
        raise ArtifactRejectedError(RejectionReason.CHECKSUM_MISMATCH, detail)


def load_model(
    ready: ModelReady, device: torch.device, *, cache_dir: Path = DEFAULT_CACHE_DIR
) -> ServingModel:
    """Verify, load and smoke-test the artifact ``ready`` announces."""
    data = read_verified(ready, cache_dir=cache_dir)
    module, metadata = _load_module(data, device)
    if (metadata.model_name, metadata.version) != (ready.model_name, ready.version):
        detail = (
            f"artifact says {metadata.model_name} {metadata.version}, "
            f"ModelReady says {ready.model_name} {ready.version}"
        )
        raise ArtifactRejectedError(RejectionReason.INVALID_METADATA, detail)

    model = ServingModel(
        model_name=metadata.model_name,
        version=metadata.version,
        max_len=metadata.max_len,
        item_ids=metadata.item_ids,
        item_descriptions=metadata.item_descriptions,
        popular_items=metadata.popular_items,
        scorer=TorchScriptScorer(module, device),
    )
    smoke_test(model)
    return model


def _load_module(
    data: bytes, device: torch.device
) -> tuple[torch.jit.ScriptModule, ArtifactMetadata]:
    extra_files = {METADATA_FILE: ""}
    try:
        with _torchscript_deprecation_silenced():
            module = torch.jit.load(  # type: ignore[no-untyped-call]
                io.BytesIO(data), map_location=device, _extra_files=extra_files
            )
    except Exception as exc:  # torch raises plain RuntimeError for bad archives
        raise ArtifactRejectedError(RejectionReason.UNREADABLE, repr(exc)) from None
    module.eval()
    if not extra_files[METADATA_FILE]:
        raise ArtifactRejectedError(
            RejectionReason.INVALID_METADATA, f"no {METADATA_FILE}"
        )
    return module, ArtifactMetadata.from_json(extra_files[METADATA_FILE])


def smoke_test(model: ServingModel) -> None:
    """Score a probe batch; refuse a model with a wrong shape or non-finite scores.

    The probe holds what requests send: a one-purchase history, mostly padding,
    and a full one. All-padding rows are never sent (popularity answers those),
    so a model need not score them.
    """
    probe = torch.zeros((2, model.max_len), dtype=torch.long)
    history = torch.arange(1, min(model.item_count, model.max_len + 1))
    probe[0, -1] = 1
    probe[1, model.max_len - len(history) :] = history
    try:
        scores = model.scorer.score(probe)
    except Exception as exc:  # anything the module raises makes it unfit to serve
        raise ArtifactRejectedError(
            RejectionReason.SMOKE_TEST_FAILED, repr(exc)
        ) from None

    expected = (2, model.item_count)
    if tuple(scores.shape) != expected or not scores.is_floating_point():
        detail = f"scores are {scores.dtype} {tuple(scores.shape)}, not {expected}"
        raise ArtifactRejectedError(RejectionReason.SMOKE_TEST_FAILED, detail)
    if not bool(torch.isfinite(scores[:, PADDING_INDEX + 1 :]).all()):
        raise ArtifactRejectedError(
            RejectionReason.SMOKE_TEST_FAILED, "non-finite scores"
        )


def write_artifact(
    module: torch.jit.ScriptModule,
    metadata: ArtifactMetadata,
    path: Path,
    *,
    metrics: Sequence[tuple[str, float]] = (),
    snapshot_id: str = "",
) -> ModelReady:
    """Save ``module`` with its metadata at ``path``; return its announcement."""
    metadata.check()
    path.parent.mkdir(parents=True, exist_ok=True)
    with _torchscript_deprecation_silenced():
        torch.jit.save(
            module, str(path), _extra_files={METADATA_FILE: metadata.to_json()}
        )

    data = path.read_bytes()
    ready = ModelReady(
        model_name=metadata.model_name,
        version=metadata.version,
        artifact_uri=path.resolve().as_uri(),
        size_bytes=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        metrics=dict(metrics),
        snapshot_id=snapshot_id,
    )
    ready.created_at.FromDatetime(datetime.now(UTC))
    return ready


@contextlib.contextmanager
def _torchscript_deprecation_silenced() -> Iterator[None]:
    # TorchScript is the artifact format the platform agreed on; torch now warns
    # that it is deprecated on every save and load.
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message=r"`torch\.jit\.\w+` is deprecated", category=FutureWarning
        )
        yield
