"""Where model versions are kept: a local directory, or an S3 bucket.

The registry is named by one URI, ``RECOPS_REGISTRY_URI``:

- ``file:///var/lib/recops/registry``: a directory, laid out as
  :mod:`trainer.artifact` describes. A version is staged and renamed into
  place, so it appears whole or not at all.
- ``s3://bucket/prefix``: the same layout under a key prefix, on AWS or any
  S3-compatible server (``RECOPS_S3_ENDPOINT_URL``). S3 has no rename, so a
  version's data files are put first and its ``manifest.json`` last: a
  version counts only once its manifest is there, and then every file it
  lists is there too.

Keys are paths relative to the registry root, ``<model_name>/<version>/<file>``
or ``<model_name>/SERVING``. Both stores answer the same
:class:`ArtifactStore` protocol, so backup, restore and the serving pointer
(:mod:`trainer.registry`) need not know which one they hold.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import unquote, urlparse

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from trainer.artifact import (
    MANIFEST_FILE,
    ModelManifest,
    file_digest,
    staged_version,
    sync_directory,
)
from trainer.errors import ArtifactError

logger = logging.getLogger(__name__)

_CHUNK_BYTES = 1 << 20


class ArtifactStore(Protocol):
    """A registry's storage: whole versions in, single files out."""

    @property
    def uri(self) -> str:
        """The registry's root URI."""
        ...

    def key_uri(self, key: str) -> str:
        """The URI of one key, as ModelReady's ``artifact_uri`` carries it."""
        ...

    def model_names(self) -> list[str]:
        """Models with at least one key in the store, sorted."""
        ...

    def version_names(self, model_name: str) -> list[str]:
        """Versions of a model that have a manifest, oldest name first."""
        ...

    def read_bytes(self, key: str) -> bytes | None:
        """A small object's bytes; None when it does not exist."""
        ...

    def write_bytes(self, key: str, data: bytes) -> None:
        """Replace a small object in one step: readers see old or new, whole."""
        ...

    def digest(self, key: str) -> tuple[str, int]:
        """SHA-256 (hex) and size of one object, read through."""
        ...

    def download(self, key: str, target: Path) -> None:
        """Copy one object to a local file."""
        ...

    def put_version(
        self, source_dir: Path, manifest: ModelManifest, *, replace: bool = False
    ) -> None:
        """Store a local version directory so that it appears only when whole.

        Refuses a version that exists unless ``replace``, which restore uses
        to put back a damaged one.
        """
        ...


def version_key(model_name: str, version: str, name: str = "") -> str:
    """The key of a version's directory, or of one file in it."""
    return f"{model_name}/{version}/{name}" if name else f"{model_name}/{version}"


class LocalStore:
    """A registry in a local directory; versions are staged and renamed in."""

    def __init__(self, root: Path) -> None:
        self.root = root

    @property
    def uri(self) -> str:
        return self.root.resolve().as_uri()

    def key_uri(self, key: str) -> str:
        return (self.root / key).resolve().as_uri()

    def model_names(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(
            path.name
            for path in self.root.iterdir()
            if path.is_dir() and not path.name.startswith(".")
        )

    def version_names(self, model_name: str) -> list[str]:
        parent = self.root / model_name
        if not parent.is_dir():
            return []
        return sorted(
            path.name
            for path in parent.iterdir()
            if path.is_dir()
            and not path.name.startswith(".")
            and (path / MANIFEST_FILE).is_file()
        )

    def read_bytes(self, key: str) -> bytes | None:
        try:
            return (self.root / key).read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise ArtifactError(f"cannot read {key}: {exc.strerror}") from exc

    def write_bytes(self, key: str, data: bytes) -> None:
        path = self.root / key
        temporary = path.with_name(f".{path.name}-{uuid.uuid4().hex[:8]}")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(temporary, "wb") as file:
                file.write(data)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, path)
            sync_directory(path.parent)
        except OSError as exc:
            temporary.unlink(missing_ok=True)
            raise ArtifactError(f"cannot write {key}: {exc.strerror}") from exc

    def digest(self, key: str) -> tuple[str, int]:
        try:
            return file_digest(self.root / key)
        except OSError as exc:
            raise ArtifactError(f"cannot read {key}: {exc.strerror}") from exc

    def download(self, key: str, target: Path) -> None:
        try:
            shutil.copyfile(self.root / key, target)
        except OSError as exc:
            raise ArtifactError(f"cannot copy {key}: {exc.strerror}") from exc

    def put_version(
        self, source_dir: Path, manifest: ModelManifest, *, replace: bool = False
    ) -> None:
        final = self.root / version_key(manifest.model_name, manifest.version)
        if final.exists() and final.resolve() == source_dir.resolve():
            return
        try:
            with staged_version(
                self.root, manifest.model_name, manifest.version, replace=replace
            ) as staging:
                for name in manifest.files:
                    (staging / name).parent.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(source_dir / name, staging / name)
                (staging / MANIFEST_FILE).write_text(manifest.to_json())
        except OSError as exc:
            raise ArtifactError(f"cannot store {manifest.version}: {exc}") from exc


class S3Store:
    """A registry under a key prefix in an S3 bucket; the manifest goes last."""

    def __init__(self, client: Any, bucket: str, prefix: str = "") -> None:
        self._client = client
        self.bucket = bucket
        self.prefix = prefix.strip("/")

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}".rstrip("/")

    def key_uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{self._key(key)}"

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def model_names(self) -> list[str]:
        return sorted({key.split("/")[0] for key in self._keys("") if "/" in key})

    def version_names(self, model_name: str) -> list[str]:
        versions = set()
        for key in self._keys(f"{model_name}/"):
            parts = key.split("/")
            if len(parts) == 3 and parts[2] == MANIFEST_FILE:
                versions.add(parts[1])
        return sorted(versions)

    def _keys(self, under: str) -> list[str]:
        """Every key below ``under``, relative to the registry root."""
        root = f"{self.prefix}/" if self.prefix else ""
        keys: list[str] = []
        with _s3_errors(f"cannot list {self.uri}"):
            pages = self._client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=root + under
            )
            for page in pages:
                keys.extend(
                    item["Key"][len(root) :] for item in page.get("Contents", [])
                )
        return keys

    def read_bytes(self, key: str) -> bytes | None:
        try:
            response = self._client.get_object(Bucket=self.bucket, Key=self._key(key))
            data: bytes = response["Body"].read()
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                return None
            raise _store_error(f"cannot read {self.key_uri(key)}", exc) from exc
        except BotoCoreError as exc:
            raise _store_error(f"cannot read {self.key_uri(key)}", exc) from exc
        return data

    def write_bytes(self, key: str, data: bytes) -> None:
        with _s3_errors(f"cannot write {self.key_uri(key)}"):
            self._client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data)

    def digest(self, key: str) -> tuple[str, int]:
        digest = hashlib.sha256()
        size = 0
        with _s3_errors(f"cannot read {self.key_uri(key)}"):
            response = self._client.get_object(Bucket=self.bucket, Key=self._key(key))
            for chunk in response["Body"].iter_chunks(_CHUNK_BYTES):
                digest.update(chunk)
                size += len(chunk)
        return digest.hexdigest(), size

    def download(self, key: str, target: Path) -> None:
        with _s3_errors(f"cannot download {self.key_uri(key)}"):
            self._client.download_file(self.bucket, self._key(key), str(target))

    def put_version(
        self, source_dir: Path, manifest: ModelManifest, *, replace: bool = False
    ) -> None:
        model_name, version = manifest.model_name, manifest.version
        manifest_key = version_key(model_name, version, MANIFEST_FILE)
        if self.read_bytes(manifest_key) is not None:
            if not replace:
                raise ArtifactError(f"model version {version} already exists")
            with _s3_errors(f"cannot withdraw {version}"):
                self._client.delete_object(
                    Bucket=self.bucket, Key=self._key(manifest_key)
                )
        for name in manifest.files:
            key = self._key(version_key(model_name, version, name))
            with _s3_errors(f"cannot upload {name} of {version}"):
                self._client.upload_file(str(source_dir / name), self.bucket, key)
        self.write_bytes(manifest_key, manifest.to_json().encode())
        logger.info(
            "uploaded model version",
            extra={"model_version": version, "registry": self.uri},
        )


def open_store(uri: str, *, s3_endpoint_url: str | None = None) -> ArtifactStore:
    """The store a registry URI names: ``file://`` or ``s3://``."""
    parsed = urlparse(uri)
    if parsed.scheme == "file" and parsed.netloc in ("", "localhost"):
        return LocalStore(Path(unquote(parsed.path)))
    if parsed.scheme == "s3" and parsed.netloc:
        client = boto3.client("s3", endpoint_url=s3_endpoint_url or None)
        return S3Store(client, parsed.netloc, unquote(parsed.path))
    raise ArtifactError(f"registry URI must be file:// or s3://bucket, got {uri!r}")


@contextlib.contextmanager
def _s3_errors(what: str) -> Iterator[None]:
    """Turn boto's and local files' errors inside the block into ArtifactError."""
    try:
        yield
    except (ClientError, BotoCoreError, OSError) as exc:
        raise _store_error(what, exc) from exc


def _store_error(what: str, exc: Exception) -> ArtifactError:
    """Connection trouble, throttling and server errors are worth retrying."""
    retriable = not isinstance(exc, OSError)
    if isinstance(exc, ClientError):
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 500)
        retriable = status >= 500 or status == 429
    return ArtifactError(f"{what}: {exc}", retriable=retriable)
