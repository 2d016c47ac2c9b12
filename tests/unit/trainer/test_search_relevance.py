import math

import numpy as np
import pytest
from search_corpora import FixedFeedbackRanker, FixedRanker

from trainer.search.corpus import Judgments, ProductCorpus
from trainer.search.relevance import (
    Evaluation,
    HybridGrid,
    dcg,
    fit_hybrid,
    ndcg,
    split_queries,
)

CORPUS = ProductCorpus(
    ["p1", "p2", "p3", "p4", "p5"], ["one", "two", "three", "four", "five"]
)
# p1 exact, p2 substitute, p3 complement, p4 irrelevant; p5 never judged.
JUDGMENTS = Judgments({"q": {"p1": "E", "p2": "S", "p3": "C", "p4": "I"}})


def test_dcg_discounts_each_gain_by_the_log_of_its_rank_plus_one() -> None:
    assert dcg([1.0, 0.1, 0.01]) == pytest.approx(
        1.0 + 0.1 / math.log2(3) + 0.01 / math.log2(4)
    )


def test_a_perfect_order_scores_one_and_a_reversed_one_less() -> None:
    gains = [1.0, 0.1, 0.01, 0.0]
    assert ndcg(gains, gains, None) == pytest.approx(1.0)
    reversed_value = ndcg(gains[::-1], gains, None)
    expected = (0.1 / math.log2(4) + 1.0 / math.log2(5)) / dcg(gains)
    expected += 0.01 / math.log2(3) / dcg(gains)
    assert reversed_value == pytest.approx(expected)


def test_a_query_with_no_positive_gain_has_no_ndcg() -> None:
    assert ndcg([0.0, 0.0], [0.0, 0.0], 10) is None


def test_retrieval_counts_unjudged_products_as_gain_zero() -> None:
    evaluation = Evaluation(CORPUS, JUDGMENTS)
    # p5 (unjudged) first, then p1, p2: the ideal top 3 is p1, p2, p3.
    scores = np.array([0.9, 0.8, 0.1, 0.0, 1.0])

    value = evaluation.retrieval_ndcg("q", scores, cutoff=3)

    ideal = 1.0 + 0.1 / math.log2(3) + 0.01 / math.log2(4)
    assert value == pytest.approx((1.0 / math.log2(3) + 0.1 / math.log2(4)) / ideal)


def test_reranking_orders_only_the_judged_products_and_scores_the_whole_list() -> None:
    evaluation = Evaluation(CORPUS, JUDGMENTS)
    # The unjudged p5 scores highest, but re-ranking never sees it.
    scores = np.array([0.5, 0.9, 0.1, 0.0, 1.0])

    value = evaluation.rerank_ndcg("q", scores)

    ranked = [0.1, 1.0, 0.01, 0.0]
    assert value == pytest.approx(dcg(ranked) / dcg([1.0, 0.1, 0.01, 0.0]))


def test_equal_scores_are_ordered_by_product_id_not_by_corpus_position() -> None:
    corpus = ProductCorpus(["b", "a"], ["same", "same"])
    judgments = Judgments({"q": {"a": "E", "b": "I"}})
    evaluation = Evaluation(corpus, judgments)

    assert evaluation.rerank_ndcg("q", np.zeros(2)) == pytest.approx(1.0)
    assert evaluation.retrieval_ndcg("q", np.zeros(2), 1) == pytest.approx(1.0)


def test_the_cutoff_keeps_the_lowest_product_ids_among_tied_scores() -> None:
    corpus = ProductCorpus(["e", "d", "c", "b", "a"], ["x"] * 5)
    evaluation = Evaluation(corpus, Judgments({}))
    scores = np.array([0.5, 0.5, 1.0, 0.5, 0.0])

    best = evaluation.best_first(scores, 3)

    assert [corpus.product_ids[n] for n in best] == ["c", "b", "d"]


def test_quality_averages_over_queries_and_skips_those_without_gain() -> None:
    judgments = Judgments(
        {"good": {"p1": "E", "p2": "I"}, "bad": {"p1": "E", "p2": "I"}, "none": {}}
    )
    judgments.labels["none"] = {"p3": "I"}
    evaluation = Evaluation(CORPUS, judgments)
    rows = {
        "good": np.array([1.0, 0.0, 0.0, 0.0, 0.0]),
        "bad": np.array([0.0, 1.0, 0.0, 0.0, 0.0]),
        "none": np.zeros(5),
    }

    quality = evaluation.quality(FixedRanker(rows), ["good", "bad", "none"], 1)

    assert quality.queries == 2
    assert quality.ndcg == pytest.approx(0.5)
    assert quality.rerank_ndcg == pytest.approx((1.0 + 1.0 / math.log2(3)) / 2)


def test_a_judged_product_missing_from_the_corpus_is_refused() -> None:
    with pytest.raises(ValueError, match="not in the corpus"):
        Evaluation(CORPUS, Judgments({"q": {"elsewhere": "E"}}))


def test_an_empty_query_list_is_refused() -> None:
    with pytest.raises(ValueError, match="no query"):
        Evaluation(CORPUS, JUDGMENTS).quality(FixedRanker({}), [])


def test_the_query_split_puts_each_query_on_exactly_one_side() -> None:
    queries = [f"query {n}" for n in range(50)]

    train, test = split_queries(queries, test_share=0.3, seed=5)

    assert not set(train) & set(test)
    assert set(train) | set(test) == set(queries)
    assert len(test) == 15


def test_the_query_split_depends_on_the_seed_and_not_on_input_order() -> None:
    queries = [f"query {n}" for n in range(50)]

    first = split_queries(queries, test_share=0.5, seed=5)
    again = split_queries(list(reversed(queries)), test_share=0.5, seed=5)
    other = split_queries(queries, test_share=0.5, seed=6)

    assert first == again
    assert first != other


FINDS = np.array([1.0, 0.2, 0.3, 0.4, 0.5])
MISSES = np.array([0.0, 0.2, 0.3, 0.4, 0.5])


def test_the_fitted_weight_leans_to_whichever_ranker_finds_the_exact_product() -> None:
    evaluation = Evaluation(CORPUS, JUDGMENTS)
    finds = FixedFeedbackRanker({"q": FINDS}, {"q": FINDS})
    misses = FixedFeedbackRanker({"q": MISSES}, {"q": MISSES})

    leaning_dense = fit_hybrid(evaluation, finds, misses, ["q"], cutoff=1)
    leaning_bm25 = fit_hybrid(evaluation, misses, finds, ["q"], cutoff=1)

    assert leaning_dense.dense_weight > 0.5
    assert leaning_bm25.dense_weight == 0.0
    assert leaning_bm25.feedback is None


def test_feedback_is_fitted_when_only_the_moved_query_finds_the_product() -> None:
    evaluation = Evaluation(CORPUS, JUDGMENTS)
    helped = FixedFeedbackRanker({"q": MISSES}, {"q": FINDS})
    harmed = FixedFeedbackRanker({"q": FINDS}, {"q": MISSES})
    bm25 = FixedRanker({"q": MISSES})

    assert fit_hybrid(evaluation, helped, bm25, ["q"], cutoff=1).feedback is not None
    assert fit_hybrid(evaluation, harmed, bm25, ["q"], cutoff=1).feedback is None


def test_the_grid_fits_on_the_queries_it_is_asked_about_only() -> None:
    judgments = Judgments({"a": {"p1": "E", "p2": "I"}, "b": {"p1": "E", "p2": "I"}})
    evaluation = Evaluation(CORPUS, judgments)
    dense = FixedFeedbackRanker({"a": MISSES, "b": FINDS}, {"a": FINDS, "b": MISSES})
    bm25 = FixedRanker({"a": MISSES, "b": MISSES})

    grid = HybridGrid(evaluation, dense, bm25, ["a", "b"], cutoff=1)

    assert grid.best(["a"]).feedback is not None
    assert grid.best(["b"]).feedback is None
    assert grid.best(["b"]).dense_weight > 0.0


def test_a_fixed_weight_is_kept_and_only_the_feedback_fitted() -> None:
    evaluation = Evaluation(CORPUS, JUDGMENTS)
    dense = FixedFeedbackRanker({"q": MISSES}, {"q": FINDS})
    bm25 = FixedRanker({"q": MISSES})

    fit = fit_hybrid(evaluation, dense, bm25, ["q"], cutoff=1, weights=[0.9])

    assert fit.dense_weight == 0.9
    assert fit.feedback is not None
