import math

import pytest

from trainer.evaluation import (
    EvaluationCase,
    PopularityRecommender,
    RankingQuality,
    evaluate,
    evaluation_cases,
    quality_table,
    score_ranking,
)
from trainer.sequences import ItemCatalogue
from trainer.snapshot import PurchaseLog


def log(*purchases: tuple[str, str]) -> PurchaseLog:
    return PurchaseLog(
        user_ids=[user for user, _ in purchases],
        item_ids=[item for _, item in purchases],
        item_descriptions=["" for _ in purchases],
    )


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
    assert quality.as_metrics(prefix="base.")["base.ndcg@1"] == pytest.approx(0.25)


def test_cases_are_customers_who_bought_in_the_window_with_a_history() -> None:
    histories = {"anna": [1, 2], "ben": [3], "cora": []}
    window = log(
        ("anna", "X"), ("anna", "X"), ("anna", "Y"), ("cora", "X"), ("dan", "Z")
    )

    cases = evaluation_cases(histories, window)

    assert cases == [EvaluationCase("anna", [1, 2], frozenset({"X", "Y"}))]


def test_popularity_recommends_the_most_purchased_training_products() -> None:
    catalogue = ItemCatalogue.from_purchases(
        log(
            ("a", "MUG"),
            ("b", "MUG"),
            ("a", "JAR"),
            ("c", "MUG"),
            ("c", "JAR"),
            ("c", "BOX"),
        )
    )
    cases = [
        EvaluationCase("a", [1], frozenset({"MUG"})),
        EvaluationCase("b", [1], frozenset({"BOX"})),
    ]

    quality = evaluate(PopularityRecommender(catalogue), cases, catalogue, cutoff=2)

    assert PopularityRecommender(catalogue).recommend([[3]], 2) == [[1, 2]]
    assert quality.hit_rate == pytest.approx(0.5)
    assert quality.ndcg == pytest.approx(0.5)


def test_a_product_unknown_to_the_catalogue_counts_as_missed() -> None:
    catalogue = ItemCatalogue.from_purchases(log(("a", "MUG")))
    case = EvaluationCase("a", [1], frozenset({"MUG", "NEW"}))

    quality = evaluate(PopularityRecommender(catalogue), [case], catalogue, cutoff=1)

    assert quality.recall == pytest.approx(0.5)


def test_the_quality_table_lists_each_recommender_with_its_figures() -> None:
    quality = RankingQuality.mean_of([score_ranking(["a"], {"a"}, 10)], cutoff=10)

    table = quality_table({"model": quality, "baseline_popularity": quality})

    lines = table.splitlines()
    assert "ndcg@10" in lines[0]
    assert lines[2].startswith("model ")
    assert lines[3].startswith("baseline_popularity ")
    assert "1.0000" in lines[3]
