import json
import re
from pathlib import Path

import numpy as np
import pytest
from search_corpora import SHOP_PRODUCTS, WordHashEncoder

from trainer.artifact import MANIFEST_FILE, STAGING_PREFIX, list_versions
from trainer.errors import ArtifactError, ArtifactIntegrityError
from trainer.registry import verify_version
from trainer.search.corpus import ProductCorpus
from trainer.search.index import (
    EMBEDDINGS_FILE,
    PRODUCTS_FILE,
    SEARCH_MODEL_NAME,
    index_corpus,
    latest_search_index,
    load_search_index,
    write_search_index,
)
from trainer.search.rankers import Feedback
from trainer.storage import LocalStore

CORPUS = ProductCorpus(list(SHOP_PRODUCTS), list(SHOP_PRODUCTS.values()))


def store(
    registry: Path,
    weight: float = 0.5,
    version: str | None = None,
    feedback: Feedback | None = None,
) -> Path:
    encoder = WordHashEncoder()
    stored = write_search_index(
        registry,
        CORPUS,
        encoder.encode(CORPUS.texts),
        source="snap-1",
        encoder=encoder.name,
        dense_weight=weight,
        feedback=feedback,
        metrics={"hybrid/ndcg@10": 0.6},
        config={"max_tokens": 128},
        version=version,
    )
    return stored.directory


def test_a_stored_index_loads_and_finds_the_product_by_its_words(
    tmp_path: Path,
) -> None:
    directory = store(tmp_path)

    index = load_search_index(directory, WordHashEncoder())
    found = index.search("metal lantern", k=3)

    assert found[0][0] == "71053"
    assert len(found) == 3
    assert found[0][1] >= found[1][1] >= found[2][1]


def test_search_returns_at_most_the_whole_catalogue(tmp_path: Path) -> None:
    index = load_search_index(store(tmp_path), WordHashEncoder())

    found = index.search("heart", k=100)

    assert sorted(product for product, _ in found) == sorted(SHOP_PRODUCTS)


def test_a_blank_query_finds_nothing_and_a_k_below_one_is_refused(
    tmp_path: Path,
) -> None:
    index = load_search_index(store(tmp_path), WordHashEncoder())

    assert index.search("   ", k=5) == []
    with pytest.raises(ValueError, match="k"):
        index.search("heart", k=0)


def test_the_manifest_records_each_file_metrics_config_and_encoder(
    tmp_path: Path,
) -> None:
    directory = store(tmp_path, weight=0.7)

    manifest = json.loads((directory / MANIFEST_FILE).read_text())

    assert manifest["model_name"] == SEARCH_MODEL_NAME
    assert manifest["item_count"] == len(SHOP_PRODUCTS)
    assert manifest["training"]["encoder"] == "word-hash"
    assert manifest["training"]["dense_weight"] == 0.7
    assert manifest["metrics"] == {"hybrid/ndcg@10": 0.6}
    assert manifest["config"] == {"max_tokens": 128}
    assert manifest["snapshot_id"] == "snap-1"
    assert manifest["model_file"] == EMBEDDINGS_FILE
    for name in (PRODUCTS_FILE, EMBEDDINGS_FILE):
        size = (directory / name).stat().st_size
        assert manifest["files"][name]["size_bytes"] == size
        assert len(manifest["files"][name]["sha256"]) == 64


def test_the_stored_feedback_is_the_one_the_loaded_index_ranks_with(
    tmp_path: Path,
) -> None:
    feedback = Feedback(products=2, weight=3.0)

    directory = store(tmp_path, feedback=feedback)
    manifest = json.loads((directory / MANIFEST_FILE).read_text())
    index = load_search_index(directory, WordHashEncoder())

    assert manifest["training"]["feedback_products"] == 2
    assert manifest["training"]["feedback_weight"] == 3.0
    assert index.ranker.feedback == feedback


def test_an_index_stored_without_feedback_ranks_once(tmp_path: Path) -> None:
    index = load_search_index(store(tmp_path), WordHashEncoder())

    assert index.ranker.feedback is None
    assert index.search("metal lantern", k=1)[0][0] == "71053"


def test_the_latest_index_is_the_newest_version(tmp_path: Path) -> None:
    store(tmp_path, version="20261203T190102Z-00000000")
    newest = store(tmp_path, version="20261204T080000Z-00000000")

    assert latest_search_index(tmp_path) == newest


def test_a_registry_without_an_index_says_so(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match=SEARCH_MODEL_NAME):
        latest_search_index(tmp_path)


@pytest.mark.parametrize("name", [PRODUCTS_FILE, EMBEDDINGS_FILE])
def test_a_changed_file_is_refused(tmp_path: Path, name: str) -> None:
    directory = store(tmp_path)
    path = directory / name
    data = bytearray(path.read_bytes())
    data[-2] ^= 0xFF
    path.write_bytes(bytes(data))

    with pytest.raises(ArtifactIntegrityError, match=re.escape(f"{name} has sha256")):
        load_search_index(directory, WordHashEncoder())


def test_the_registry_verifies_a_search_index_like_any_model_version(
    tmp_path: Path,
) -> None:
    directory = store(tmp_path)
    store_of_versions = LocalStore(tmp_path)

    assert verify_version(store_of_versions, SEARCH_MODEL_NAME, directory.name) == []
    (directory / PRODUCTS_FILE).write_text("{}")
    assert verify_version(store_of_versions, SEARCH_MODEL_NAME, directory.name)


def test_a_missing_file_is_refused(tmp_path: Path) -> None:
    directory = store(tmp_path)
    (directory / EMBEDDINGS_FILE).unlink()

    with pytest.raises(ArtifactIntegrityError, match=r"embeddings\.npy unreadable"):
        load_search_index(directory, WordHashEncoder())


def test_embeddings_that_disagree_with_the_manifest_are_refused(
    tmp_path: Path,
) -> None:
    directory = store(tmp_path)
    manifest = json.loads((directory / MANIFEST_FILE).read_text())
    manifest["item_count"] = len(SHOP_PRODUCTS) + 1
    (directory / MANIFEST_FILE).write_text(json.dumps(manifest))

    with pytest.raises(ArtifactIntegrityError, match="count"):
        load_search_index(directory, WordHashEncoder())


def test_an_index_built_by_another_encoder_is_refused(tmp_path: Path) -> None:
    directory = store(tmp_path)
    other = WordHashEncoder()
    other.name = "another-encoder"

    with pytest.raises(ArtifactIntegrityError, match="built by word-hash"):
        load_search_index(directory, other)


def test_embeddings_that_are_not_unit_vectors_are_never_stored(
    tmp_path: Path,
) -> None:
    embeddings = 2 * WordHashEncoder().encode(CORPUS.texts)

    with pytest.raises(ArtifactIntegrityError, match="unit"):
        write_search_index(
            tmp_path,
            CORPUS,
            embeddings,
            source="snap-1",
            encoder="word-hash",
            dense_weight=0.5,
            metrics={},
            config={},
        )
    assert list_versions(tmp_path, SEARCH_MODEL_NAME) == []


def test_a_failed_write_leaves_no_version_and_no_staging_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def fail(*args: object, **kwargs: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(np, "save", fail)

    with pytest.raises(ArtifactError, match="disk full"):
        store(tmp_path)

    assert list_versions(tmp_path, SEARCH_MODEL_NAME) == []
    leftovers = list((tmp_path / SEARCH_MODEL_NAME).iterdir())
    assert not [p for p in leftovers if p.name.startswith(STAGING_PREFIX)]
    assert leftovers == []


def test_indexing_a_corpus_embeds_it_once_and_reuses_the_cache(
    tmp_path: Path,
) -> None:
    encoder = WordHashEncoder()
    for _ in range(2):
        index_corpus(
            tmp_path / "registry",
            CORPUS,
            encoder,
            source="snap-1",
            dense_weight=0.5,
            metrics={},
            config={},
            cache_dir=tmp_path / "cache",
        )

    assert encoder.calls == 1
    assert len(list_versions(tmp_path / "registry", SEARCH_MODEL_NAME)) == 2
