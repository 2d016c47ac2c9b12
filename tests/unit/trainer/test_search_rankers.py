import numpy as np
import pytest
from search_corpora import SHOP_PRODUCTS, FixedRanker, WordHashEncoder

from trainer.search.rankers import (
    Bm25Ranker,
    DenseRanker,
    Feedback,
    HybridRanker,
    PrecomputedRanker,
    fuse,
    rescale,
    tokenize,
    wanted_text,
)

TEXTS = list(SHOP_PRODUCTS.values())


def test_tokenize_lowercases_splits_on_punctuation_and_folds_plurals() -> None:
    assert tokenize("Cream CUPID-Hearts, 3 tier!") == [
        "cream",
        "cupid",
        "heart",
        "3",
        "tier",
    ]


def test_short_words_keep_their_final_s() -> None:
    assert tokenize("gas bus") == ["gas", "bus"]


def test_bm25_ranks_the_product_sharing_the_query_words_first() -> None:
    ranker = Bm25Ranker(TEXTS)

    scores = ranker.score_queries(["metal lantern", "cake cases"])

    assert TEXTS[int(np.argmax(scores[0]))] == "WHITE METAL LANTERN"
    assert TEXTS[int(np.argmax(scores[1]))] == "PACK OF 72 RETROSPOT CAKE CASES"


def test_bm25_weighs_a_rare_word_above_a_common_one() -> None:
    ranker = Bm25Ranker(["white heart", "white lantern", "white flag", "red flag"])

    scores = ranker.score_queries(["white heart"])[0]

    assert int(np.argmax(scores)) == 0
    assert scores[1] < scores[0]


def test_bm25_scores_nothing_for_words_no_product_has() -> None:
    scores = Bm25Ranker(TEXTS).score_queries(["zebra"])

    assert scores.shape == (1, len(TEXTS))
    assert not scores.any()


def test_bm25_over_texts_without_words_scores_zero() -> None:
    assert not Bm25Ranker(["", "--"]).score_queries(["heart"]).any()


def test_dense_scores_are_cosine_similarities_of_the_embeddings() -> None:
    encoder = WordHashEncoder()
    embeddings = encoder.encode(TEXTS)
    ranker = DenseRanker(encoder, embeddings)

    scores = ranker.score_queries([TEXTS[3]])[0]

    assert int(np.argmax(scores)) == 3
    assert scores[3] == pytest.approx(1.0, abs=1e-5)
    assert np.all(scores <= 1.0 + 1e-5)


def test_rescale_maps_each_row_from_its_least_to_its_best_score() -> None:
    rows = np.array([[1.0, 2.0, 3.0, 11.0], [5.0, 5.0, 5.0, 5.0]])

    rescaled = rescale(rows)

    assert rescaled[0] == pytest.approx([0.0, 0.1, 0.2, 1.0])
    assert not rescaled[1].any()


def test_fusion_at_the_extremes_is_one_ranker_alone() -> None:
    dense = np.array([[3.0, 1.0, 2.0]])
    lexical = np.array([[0.0, 9.0, 1.0]])

    assert np.argmax(fuse(dense, lexical, 1.0)) == 0
    assert np.argmax(fuse(dense, lexical, 0.0)) == 1


def test_the_hybrid_prefers_a_product_both_rankers_like_to_one_only_one_loves() -> None:
    dense = FixedRanker({"q": np.array([1.0, 0.0, 0.7, 0.0])})
    lexical = FixedRanker({"q": np.array([0.0, 1.0, 0.7, 0.0])})

    scores = HybridRanker(dense, lexical, weight=0.5).score_queries(["q"])[0]

    assert int(np.argmax(scores)) == 2


def test_feedback_moves_the_dense_query_towards_the_first_rankings_best() -> None:
    encoder = WordHashEncoder()
    texts = ["red lantern", "red lantern metal", "metal bucket", "blue flag"]
    ranker = DenseRanker(encoder, encoder.encode(texts))
    first = np.array([[0.0, 1.0, 0.0, 0.0]])

    plain = ranker.score_queries(["red"])[0]
    moved = ranker.score_with_feedback(
        ["red"], first, Feedback(products=1, weight=2.0)
    )[0]

    assert moved[2] - plain[2] > 0.0
    assert moved[3] - plain[3] < moved[2] - plain[2]


def test_the_hybrid_with_feedback_lifts_what_resembles_its_first_top_product() -> None:
    encoder = WordHashEncoder()
    texts = ["garden hose", "garden hose reel", "hose reel cart", "party flag"]
    dense = DenseRanker(encoder, encoder.encode(texts))
    lexical = Bm25Ranker(texts)
    once = HybridRanker(dense, lexical, weight=0.5)
    twice = HybridRanker(
        dense, lexical, weight=0.5, feedback=Feedback(products=2, weight=4.0)
    )

    before = once.score_queries(["garden hose"])[0]
    after = twice.score_queries(["garden hose"])[0]

    assert after[2] - after[3] > before[2] - before[3]


def test_feedback_without_products_or_weight_is_refused() -> None:
    with pytest.raises(ValueError, match="feedback"):
        Feedback(products=0, weight=1.0)
    with pytest.raises(ValueError, match="feedback"):
        Feedback(products=3, weight=0.0)


def test_feedback_needs_a_dense_ranker_that_can_use_it() -> None:
    ranker = FixedRanker({})
    with pytest.raises(TypeError, match="feedback"):
        HybridRanker(
            ranker, ranker, weight=0.5, feedback=Feedback(products=1, weight=1.0)
        )


def test_a_hybrid_weight_outside_zero_to_one_is_refused() -> None:
    ranker = FixedRanker({})
    with pytest.raises(ValueError, match="weight"):
        HybridRanker(ranker, ranker, weight=1.5)


def test_precomputed_scores_are_served_back_by_query_in_any_order() -> None:
    ranker = Bm25Ranker(TEXTS)
    queries = ["lantern", "bunting", "heart"]
    precomputed = PrecomputedRanker.of(ranker, queries)

    assert np.array_equal(
        precomputed.score_queries(["heart", "lantern"]),
        ranker.score_queries(["heart", "lantern"]),
    )


@pytest.mark.parametrize(
    ("query", "wanted"),
    [
        ("toddler water bottle without straw", "toddler water bottle"),
        ("weighted blanket without glass beads", "weighted blanket"),
        ("lights without wiring with switch", "lights with switch"),
        ("Bottle WITHOUT Straw", "Bottle"),
        ("without", "without"),
        ("red heart", "red heart"),
    ],
)
def test_the_wanted_text_drops_what_the_shopper_excludes(
    query: str, wanted: str
) -> None:
    assert wanted_text(query) == wanted


def test_bm25_does_not_favour_the_products_a_query_excludes() -> None:
    texts = ["water bottle with straw", "water bottle", *TEXTS]

    with_exclusions = Bm25Ranker(texts).score_queries(["bottle without straw"])
    plain = Bm25Ranker(texts, exclusions=False).score_queries(["bottle without straw"])

    assert int(np.argmax(with_exclusions[0])) == 1
    assert int(np.argmax(plain[0])) == 0
