import hashlib
import warnings
from pathlib import Path

import boto3
import pytest
import torch
from inference_fakes import ITEM_IDS, MAX_LEN, ArtifactMaker, metadata, scripted

from eventbus.contracts import ModelReady
from inference.artifact import ArtifactMetadata, artifact_path, load_model
from inference.errors import ArtifactRejectedError, RejectionReason

CPU = torch.device("cpu")


class NanScores(torch.nn.Module):
    def forward(self, item_seq: torch.Tensor) -> torch.Tensor:
        return torch.full((item_seq.shape[0], 8), float("nan"))


class TooFewScores(torch.nn.Module):
    def forward(self, item_seq: torch.Tensor) -> torch.Tensor:
        return torch.zeros((item_seq.shape[0], 5))


class NeedsAnotherShape(torch.nn.Module):
    def forward(self, item_seq: torch.Tensor) -> torch.Tensor:
        return item_seq.view(-1, 3).float()


def announcement_of(path: Path) -> ModelReady:
    data = path.read_bytes()
    return ModelReady(
        model_name="sequential-recommender",
        version="v1",
        artifact_uri=path.as_uri(),
        size_bytes=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
    )


def rejection(ready: ModelReady) -> RejectionReason:
    with pytest.raises(ArtifactRejectedError) as raised:
        load_model(ready, CPU)
    return raised.value.reason


def test_a_verified_artifact_loads_and_scores_every_catalogue_item(
    make_artifact: ArtifactMaker,
) -> None:
    ready = make_artifact("20261203T190102Z-1a2b3c4d")

    model = load_model(ready, CPU)

    assert model.version == "20261203T190102Z-1a2b3c4d"
    assert model.item_ids == ITEM_IDS
    assert model.max_len == MAX_LEN
    scores = model.scorer.score(torch.zeros((3, MAX_LEN), dtype=torch.long))
    assert tuple(scores.shape) == (3, len(ITEM_IDS))


def test_a_truncated_artifact_is_refused_for_its_size(
    make_artifact: ArtifactMaker,
) -> None:
    ready = make_artifact()
    path = artifact_path(ready.artifact_uri)
    path.write_bytes(path.read_bytes()[:-100])

    assert rejection(ready) is RejectionReason.SIZE_MISMATCH


def test_a_byte_flipped_artifact_is_refused_for_its_checksum(
    make_artifact: ArtifactMaker,
) -> None:
    ready = make_artifact()
    path = artifact_path(ready.artifact_uri)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))

    assert rejection(ready) is RejectionReason.CHECKSUM_MISMATCH


def test_a_missing_artifact_is_refused(make_artifact: ArtifactMaker) -> None:
    ready = make_artifact()
    artifact_path(ready.artifact_uri).unlink()

    assert rejection(ready) is RejectionReason.MISSING


@pytest.mark.parametrize(
    "uri",
    [
        "https://models.example/model.pt",
        "s3:///model.pt",
        "file://otherhost/m.pt",
        "m.pt",
    ],
)
def test_an_artifact_not_on_the_local_disk_is_refused(uri: str) -> None:
    ready = ModelReady(model_name="sequential-recommender", artifact_uri=uri)

    assert rejection(ready) is RejectionReason.UNSUPPORTED_URI


def test_a_file_that_is_no_torchscript_archive_is_refused_as_unreadable(
    tmp_path: Path,
) -> None:
    path = tmp_path / "model.pt"
    path.write_bytes(b"not a zip archive")
    ready = announcement_of(path)

    assert rejection(ready) is RejectionReason.UNREADABLE


def test_an_announcement_naming_another_version_than_the_artifact_is_refused(
    make_artifact: ArtifactMaker,
) -> None:
    ready = make_artifact("20261203T190102Z-1a2b3c4d")
    ready.version = "20261204T000000Z-ffffffff"

    assert rejection(ready) is RejectionReason.INVALID_METADATA


@pytest.mark.parametrize(
    ("module", "why"),
    [
        (NanScores(), "non-finite"),
        (TooFewScores(), r"\(2, 5\), not \(2, 8\)"),
        (NeedsAnotherShape(), "RuntimeError"),
    ],
)
def test_a_module_that_misbehaves_on_the_probe_batch_fails_the_smoke_test(
    make_artifact: ArtifactMaker, module: torch.nn.Module, why: str
) -> None:
    ready = make_artifact(module=module)

    with pytest.raises(ArtifactRejectedError, match=why) as raised:
        load_model(ready, CPU)
    assert raised.value.reason is RejectionReason.SMOKE_TEST_FAILED


def test_an_artifact_saved_without_metadata_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "model.pt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        torch.jit.save(scripted(TooFewScores()), str(path))
    ready = announcement_of(path)

    assert rejection(ready) is RejectionReason.INVALID_METADATA


@pytest.mark.parametrize(
    ("changes", "why"),
    [
        ({"item_ids": ("85123A", *ITEM_IDS[1:])}, "padding entry"),
        ({"item_ids": (*ITEM_IDS[:-1], ITEM_IDS[1])}, "distinct"),
        ({"item_descriptions": ("",)}, "differ in length"),
        ({"popular_items": (0, 1)}, "popular_items"),
        ({"popular_items": (len(ITEM_IDS),)}, "popular_items"),
        ({"max_len": 0}, "max_len"),
    ],
)
def test_metadata_a_server_cannot_rank_with_is_refused(
    changes: dict[str, object], why: str
) -> None:
    text = metadata("v1", **changes).to_json()

    with pytest.raises(ArtifactRejectedError, match=why) as raised:
        ArtifactMetadata.from_json(text)
    assert raised.value.reason is RejectionReason.INVALID_METADATA


@pytest.mark.parametrize(
    "text",
    ['{"format": 2}', '{"format": 1, "model_name": "m"}', "[1, 2]", "{not json"],
)
def test_metadata_of_another_format_or_missing_fields_is_refused(text: str) -> None:
    with pytest.raises(ArtifactRejectedError) as raised:
        ArtifactMetadata.from_json(text)
    assert raised.value.reason is RejectionReason.INVALID_METADATA


def test_metadata_survives_a_round_trip_through_json() -> None:
    original = metadata("20261203T190102Z-1a2b3c4d")

    assert ArtifactMetadata.from_json(original.to_json()) == original


def uploaded(
    make_artifact: ArtifactMaker, endpoint_url: str, bucket: str
) -> ModelReady:
    """An artifact put in the test bucket, announced by its s3:// URI."""
    ready = make_artifact("20261203T190102Z-1a2b3c4d")
    key = "models/sequential-recommender/20261203T190102Z-1a2b3c4d/model.pt"
    boto3.client("s3", endpoint_url=endpoint_url).upload_file(
        str(artifact_path(ready.artifact_uri)), bucket, key
    )
    ready.artifact_uri = f"s3://{bucket}/{key}"
    return ready


def test_an_artifact_in_a_bucket_is_fetched_verified_and_cached(
    make_artifact: ArtifactMaker,
    s3_endpoint_url: str,
    s3_bucket: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", s3_endpoint_url)
    ready = uploaded(make_artifact, s3_endpoint_url, s3_bucket)
    cache = tmp_path / "cache"

    model = load_model(ready, CPU, cache_dir=cache)

    assert model.version == "20261203T190102Z-1a2b3c4d"
    assert [path.name for path in cache.iterdir()] == [f"{ready.sha256}.pt"]
    cached = (cache / f"{ready.sha256}.pt").read_bytes()
    assert hashlib.sha256(cached).hexdigest() == ready.sha256


def test_a_bucket_artifact_other_than_announced_is_refused_and_not_cached(
    make_artifact: ArtifactMaker,
    s3_endpoint_url: str,
    s3_bucket: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", s3_endpoint_url)
    ready = uploaded(make_artifact, s3_endpoint_url, s3_bucket)
    ready.sha256 = "0" * 64
    cache = tmp_path / "cache"

    with pytest.raises(ArtifactRejectedError) as raised:
        load_model(ready, CPU, cache_dir=cache)

    assert raised.value.reason is RejectionReason.CHECKSUM_MISMATCH
    assert list(cache.iterdir()) == []


def test_a_missing_bucket_artifact_is_refused_as_worth_retrying(
    s3_endpoint_url: str,
    s3_bucket: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", s3_endpoint_url)
    ready = ModelReady(
        model_name="sequential-recommender",
        version="v1",
        artifact_uri=f"s3://{s3_bucket}/models/absent/model.pt",
        size_bytes=10,
        sha256="0" * 64,
    )

    with pytest.raises(ArtifactRejectedError) as raised:
        load_model(ready, CPU, cache_dir=tmp_path / "cache")

    assert raised.value.reason is RejectionReason.MISSING
    assert raised.value.retriable
