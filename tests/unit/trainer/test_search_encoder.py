from pathlib import Path

import numpy as np
import pytest
from search_corpora import WordHashEncoder

from trainer.search.encoder import (
    ENCODER_NAME,
    KnownTextsEncoder,
    TextEncoder,
    cached_embeddings,
    encoder_directory,
)


@pytest.fixture(scope="module")
def minilm() -> TextEncoder:
    with pytest.MonkeyPatch.context() as patch:
        # Any attempt to reach a model hub fails instead of downloading.
        patch.setenv("HF_HUB_OFFLINE", "1")
        patch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
        return TextEncoder(batch_size=2, device="cpu")


def test_the_encoder_files_ship_inside_the_installed_package() -> None:
    directory = encoder_directory()

    assert (directory / "model.safetensors").is_file()
    assert (directory / "tokenizer.json").is_file()
    assert "site-packages" in directory.parts or "dist-packages" in directory.parts


def test_minilm_embeds_texts_as_384_wide_unit_vectors(minilm: TextEncoder) -> None:
    embeddings = minilm.encode(["white metal lantern", "", "a" * 5000])

    assert minilm.name == ENCODER_NAME
    assert embeddings.shape == (3, 384)
    assert embeddings.dtype == np.float32
    assert np.allclose(np.linalg.norm(embeddings, axis=1), 1.0, atol=1e-5)


def test_minilm_ranks_the_obviously_matching_product_first(
    minilm: TextEncoder,
) -> None:
    products = [
        "Stainless steel kitchen knife set with wooden block",
        "Waterproof hiking boots for men, leather",
        "Children's picture book about farm animals",
        "Wireless bluetooth earbuds with charging case",
        "Ceramic coffee mug, 12 oz, dishwasher safe",
    ]
    queries = ["headphones without wires", "mug for tea", "shoes for mountains"]

    scores = minilm.encode(queries) @ minilm.encode(products).T

    assert [int(n) for n in scores.argmax(axis=1)] == [3, 4, 1]


def test_a_text_embeds_the_same_alone_or_in_a_batch(minilm: TextEncoder) -> None:
    texts = ["red heart", "regency cakestand three tier", "party bunting"]

    together = minilm.encode(texts)
    alone = minilm.encode(texts[1:2])

    assert np.allclose(together[1], alone[0], atol=1e-5)


def test_no_texts_embed_as_an_empty_matrix(minilm: TextEncoder) -> None:
    assert minilm.encode([]).shape == (0, 384)


def test_cached_embeddings_are_computed_once_per_corpus(tmp_path: Path) -> None:
    encoder = WordHashEncoder()

    first = cached_embeddings(encoder, ["heart", "lantern"], tmp_path)
    again = cached_embeddings(encoder, ["heart", "lantern"], tmp_path)
    other = cached_embeddings(encoder, ["heart", "bunting"], tmp_path)

    assert encoder.calls == 2
    assert np.array_equal(first, again)
    assert not np.array_equal(first, other)
    assert not list(tmp_path.glob("*.partial"))


def test_without_a_cache_directory_nothing_is_written(tmp_path: Path) -> None:
    encoder = WordHashEncoder()

    cached_embeddings(encoder, ["heart"], None)
    cached_embeddings(encoder, ["heart"], None)

    assert encoder.calls == 2
    assert not list(tmp_path.iterdir())


def test_known_texts_embed_once_and_as_the_encoder_would() -> None:
    encoder = WordHashEncoder()
    known = KnownTextsEncoder(encoder, ["heart", "lantern", "heart"])

    served = known.encode(["lantern", "heart", "lantern"])

    assert encoder.calls == 1
    assert np.array_equal(
        served, WordHashEncoder().encode(["lantern", "heart", "lantern"])
    )


def test_an_unknown_text_is_embedded_by_the_encoder_underneath() -> None:
    encoder = WordHashEncoder()
    known = KnownTextsEncoder(encoder, ["heart"])

    served = known.encode(["heart", "bunting"])

    assert encoder.calls == 2
    assert np.array_equal(served, WordHashEncoder().encode(["heart", "bunting"]))
    assert known.name == encoder.name
    assert known.dimensions == encoder.dimensions
