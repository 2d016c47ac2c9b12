import math
from collections.abc import Sequence

import pytest
import torch
from trainer_snapshots import numbered_catalogue, purchase_log

from trainer.baselines import PopularityRecommender
from trainer.evaluation import (
    Candidates,
    Evaluation,
    EvaluationCase,
    RankingQuality,
    evaluate,
    evaluation_cases,
    quality_table,
    recommend,
    score_ranking,
)
from trainer.sequences import ItemCatalogue

PRODUCTS = 24


def catalogue_of(products: int = PRODUCTS) -> ItemCatalogue:
    """P01 the most purchased, then P02, and so on; index n is Pnn."""
    return numbered_catalogue(range(products, 0, -1))


class RankedByLastPurchase:
    """Ranks the products in a fixed order per last purchase, then by index."""

    def __init__(self, size: int, rankings: dict[int, list[int]]) -> None:
        self._size = size
        self._rankings = rankings

    def scores(self, histories: Sequence[list[int]]) -> torch.Tensor:
        scores = -torch.arange(self._size, dtype=torch.float32).repeat(
            len(histories), 1
        )
        for row, history in enumerate(histories):
            ranking = self._rankings.get(history[-1], [])
            for rank, index in enumerate(ranking):
                scores[row, index] = 1000.0 - rank
        return scores


def in_index_order(catalogue: ItemCatalogue) -> RankedByLastPurchase:
    return RankedByLastPurchase(len(catalogue), {})


def test_one_relevant_item_at_rank_three_scores_by_hand() -> None:
    scores = score_ranking(["a", "b", "c", "d"], {"c"}, cutoff=4)

    assert scores.hit_rate == 1.0
    assert scores.precision == pytest.approx(1 / 4)
    assert scores.recall == 1.0
    assert scores.f1 == pytest.approx(2 * 0.25 * 1.0 / 1.25)
    assert scores.ndcg == pytest.approx(1 / math.log2(4))


def test_two_of_three_relevant_items_found_score_by_hand() -> None:
    scores = score_ranking(["x", "a", "y", "b"], {"a", "b", "c"}, cutoff=4)

    dcg = 1 / math.log2(3) + 1 / math.log2(5)
    ideal = 1 + 1 / math.log2(3) + 1 / math.log2(4)
    assert scores.precision == pytest.approx(2 / 4)
    assert scores.recall == pytest.approx(2 / 3)
    assert scores.f1 == pytest.approx(2 * (1 / 2) * (2 / 3) / (1 / 2 + 2 / 3))
    assert scores.ndcg == pytest.approx(dcg / ideal)


def test_ideal_dcg_counts_no_more_items_than_the_cutoff() -> None:
    scores = score_ranking(["a", "b"], {"a", "b", "c", "d"}, cutoff=2)

    assert scores.ndcg == pytest.approx(1.0)
    assert scores.recall == pytest.approx(2 / 4)


def test_recommendations_beyond_the_cutoff_do_not_count() -> None:
    scores = score_ranking(["x", "y", "a"], {"a"}, cutoff=2)

    assert scores.hit_rate == 0.0
    assert scores.ndcg == 0.0
    assert scores.f1 == 0.0


def test_a_repeated_recommendation_is_counted_once() -> None:
    scores = score_ranking(["a", "a"], {"a", "b"}, cutoff=2)

    assert scores.precision == pytest.approx(1 / 2)
    assert scores.recall == pytest.approx(1 / 2)


def test_a_customer_without_relevant_items_cannot_be_scored() -> None:
    with pytest.raises(ValueError):
        score_ranking(["a"], set(), cutoff=1)


def test_quality_is_the_mean_over_customers() -> None:
    perfect = score_ranking(["a"], {"a"}, cutoff=1)
    missed = score_ranking(["b"], {"a"}, cutoff=1)

    quality = RankingQuality.mean_of([perfect, missed, missed, missed], cutoff=1)

    assert quality.customers == 4
    assert quality.ndcg == pytest.approx(0.25)
    assert quality.hit_rate == pytest.approx(0.25)


def test_no_customers_give_zero_quality() -> None:
    quality = RankingQuality.mean_of([], cutoff=10, coverage=0.0)

    assert quality.customers == 0
    assert quality.ndcg == 0.0


def test_cases_are_customers_who_bought_in_the_window_with_a_history() -> None:
    histories = {"anna": [1, 2], "ben": [3], "cora": []}
    window = purchase_log(
        [("anna", "X"), ("anna", "X"), ("anna", "Y"), ("cora", "X"), ("dan", "Z")]
    )

    cases = evaluation_cases(histories, window)

    assert cases == [EvaluationCase("anna", [1, 2], frozenset({"X", "Y"}))]


def test_both_cutoffs_are_scored_by_hand_for_two_customers() -> None:
    catalogue = catalogue_of()
    cases = [
        # Relevant at ranks 3 and 15.
        EvaluationCase("anna", [1], frozenset({"P03", "P15"})),
        # Relevant at rank 12 only.
        EvaluationCase("ben", [2], frozenset({"P12"})),
    ]

    evaluation = evaluate(in_index_order(catalogue), cases, catalogue)

    two_ideal = 1 + 1 / math.log2(3)
    at_10, at_20 = evaluation.at[10], evaluation.at[20]
    assert sorted(evaluation.at) == [10, 20]
    assert evaluation.customers == 2
    assert at_10.hit_rate == pytest.approx(1 / 2)
    assert at_10.precision == pytest.approx((1 / 10 + 0) / 2)
    assert at_10.recall == pytest.approx((1 / 2 + 0) / 2)
    assert at_10.f1 == pytest.approx((2 * 0.1 * 0.5 / 0.6) / 2)
    assert at_10.ndcg == pytest.approx((1 / math.log2(4) / two_ideal) / 2)
    assert at_20.hit_rate == pytest.approx(1.0)
    assert at_20.precision == pytest.approx((2 / 20 + 1 / 20) / 2)
    assert at_20.recall == pytest.approx(1.0)
    anna_20 = (1 / math.log2(4) + 1 / math.log2(16)) / two_ideal
    assert at_20.ndcg == pytest.approx((anna_20 + 1 / math.log2(13)) / 2)


def test_coverage_is_the_share_of_products_anyone_was_shown() -> None:
    catalogue = catalogue_of()
    # Anna's last purchase puts P24..P15 first; Ben sees the index order.
    late_first = list(range(PRODUCTS, PRODUCTS - 10, -1))
    recommender = RankedByLastPurchase(len(catalogue), {1: late_first})
    cases = [
        EvaluationCase("anna", [1], frozenset({"P01"})),
        EvaluationCase("ben", [2], frozenset({"P01"})),
    ]

    evaluation = evaluate(recommender, cases, catalogue)

    # Top 10: P15..P24 and P01..P10; the top 20 add P11..P20 for ben.
    assert evaluation.at[10].coverage == pytest.approx(20 / PRODUCTS)
    assert evaluation.at[20].coverage == pytest.approx(PRODUCTS / PRODUCTS)


def test_padding_is_never_recommended() -> None:
    catalogue = catalogue_of(3)
    # Padding scores highest here; it must still not be recommended.
    padding_first = RankedByLastPurchase(len(catalogue), {1: [0, 3, 2, 1]})

    assert recommend(padding_first, [[1]], count=10) == [[3, 2, 1]]


def test_new_items_leave_the_history_out_of_recommendations_and_relevance() -> None:
    catalogue = catalogue_of()
    recommender = in_index_order(catalogue)
    cases = [
        # P01 was bought before: only P05 is new, at rank 3 once P01, P02 go.
        EvaluationCase("anna", [1, 2], frozenset({"P01", "P05"})),
        # Ben bought nothing new; he is left out.
        EvaluationCase("ben", [3], frozenset({"P03"})),
    ]

    new_items = evaluate(recommender, cases, catalogue, candidates=Candidates.NEW_ITEMS)
    repeats = evaluate(recommender, cases, catalogue, candidates=Candidates.REPEATS)

    assert new_items.candidates is Candidates.NEW_ITEMS
    assert new_items.customers == 1
    assert new_items.at[10].ndcg == pytest.approx(1 / math.log2(4))
    assert new_items.at[10].recall == pytest.approx(1.0)
    assert repeats.customers == 2
    anna = (1 + 1 / math.log2(6)) / (1 + 1 / math.log2(3))
    ben = 1 / math.log2(4)
    assert repeats.at[10].ndcg == pytest.approx((anna + ben) / 2)


def test_recommending_new_items_never_repeats_a_purchase() -> None:
    catalogue = catalogue_of()
    histories = [[1, 2, 2], [7], [4, 9, 1]]

    ranked = recommend(
        in_index_order(catalogue), histories, count=20, exclude_history=True
    )

    for history, indices in zip(histories, ranked, strict=True):
        assert len(indices) == 20
        assert not set(history) & set(indices)


def test_new_items_with_nobody_left_give_zero_customers() -> None:
    catalogue = catalogue_of()
    cases = [EvaluationCase("ben", [3], frozenset({"P03"}))]

    evaluation = evaluate(
        in_index_order(catalogue), cases, catalogue, candidates=Candidates.NEW_ITEMS
    )

    assert evaluation.customers == 0
    assert evaluation.at[10].ndcg == 0.0


def test_cutoffs_must_be_positive() -> None:
    catalogue = catalogue_of()

    with pytest.raises(ValueError):
        evaluate(in_index_order(catalogue), [], catalogue, cutoffs=(0, 10))


def test_a_product_unknown_to_the_catalogue_counts_as_missed() -> None:
    catalogue = ItemCatalogue.from_purchases(purchase_log([("a", "MUG")]))
    case = EvaluationCase("a", [1], frozenset({"MUG", "NEW"}))

    evaluation = evaluate(
        PopularityRecommender.all_time(catalogue), [case], catalogue, cutoffs=(1,)
    )

    assert evaluation.at[1].recall == pytest.approx(0.5)


def quality(cutoff: int, ndcg: float, customers: int = 3) -> RankingQuality:
    return RankingQuality(
        cutoff=cutoff,
        customers=customers,
        hit_rate=0.5,
        precision=0.25,
        recall=0.75,
        f1=0.375,
        ndcg=ndcg,
        coverage=0.125,
    )


def test_metric_names_carry_the_cutoff_and_the_kind_of_candidates() -> None:
    at = {10: quality(10, 0.4), 20: quality(20, 0.6)}
    repeats = Evaluation(Candidates.REPEATS, at)
    new_items = Evaluation(Candidates.NEW_ITEMS, at)

    names = {
        f"{metric}@{cutoff}"
        for metric in ("hit_rate", "precision", "recall", "f1", "ndcg", "coverage")
        for cutoff in (10, 20)
    }
    assert set(repeats.as_metrics()) == names
    assert set(new_items.as_metrics()) == {f"new_items.{name}" for name in names}
    assert repeats.as_metrics()["ndcg@10"] == 0.4
    assert repeats.as_metrics()["ndcg@20"] == 0.6
    assert new_items.as_metrics()["new_items.ndcg@20"] == 0.6
    prefixed = new_items.as_metrics("baseline.repeat.")
    assert prefixed["baseline.repeat.new_items.ndcg@10"] == 0.4
    assert repeats.as_metrics("baseline.repeat.")["baseline.repeat.ndcg@10"] == 0.4


def test_the_quality_table_lists_each_recommender_at_the_asked_cutoff() -> None:
    model = Evaluation(Candidates.REPEATS, {10: quality(10, 0.4), 20: quality(20, 0.6)})
    baseline = Evaluation(
        Candidates.REPEATS, {10: quality(10, 0.1, 7), 20: quality(20, 0.2, 7)}
    )

    table = quality_table({"model": model, "baseline.popularity": baseline}, 20)

    header, rule, model_row, baseline_row = table.splitlines()
    assert "ndcg@20" in header
    assert "ndcg@10" not in header
    assert set(rule) == {"-"}
    figures = ["0.5000", "0.2500", "0.7500", "0.3750", "0.6000", "0.1250"]
    assert model_row.split() == ["model", "3", *figures]
    assert baseline_row.split()[:2] == ["baseline.popularity", "7"]
    assert baseline_row.split()[-2] == "0.2000"
