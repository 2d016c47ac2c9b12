from trainer_snapshots import numbered_catalogue, purchase_log

from trainer.baselines import (
    CoOccurrenceRecommender,
    PopularityRecommender,
    RepeatRecommender,
)
from trainer.evaluation import Recommender, recommend
from trainer.sequences import ItemCatalogue


def ranking(
    recommender: Recommender, history: list[int], catalogue: ItemCatalogue
) -> list[int]:
    """Every product for one history, best first."""
    return recommend(recommender, [history], len(catalogue))[0]


def test_popularity_ranks_products_by_all_time_purchases_for_everyone() -> None:
    bought = {"MUG": ["a", "b", "c"], "JAR": ["a", "c"], "BOX": ["c"]}
    purchases = [(user, item) for item, users in bought.items() for user in users]
    catalogue = ItemCatalogue.from_purchases(purchase_log(purchases))
    popularity = PopularityRecommender.all_time(catalogue)

    ranked = recommend(popularity, [[3], [1, 2]], count=3)

    mug, jar, box = (catalogue.index[i] for i in ("MUG", "JAR", "BOX"))
    assert ranked == [[mug, jar, box], [mug, jar, box]]


def test_recent_popularity_counts_only_the_last_days_then_all_time_order() -> None:
    purchases = (
        [(f"c{n}", "STAPLE") for n in range(5)]
        + [(f"c{n}", "SEASONAL") for n in range(3)]
        + [("c0", "RARE"), ("c1", "EDGE")]
        + [("c2", "NEW"), ("c3", "NEW")]
    )
    days = [0.0] * 5 + [10.0] * 3 + [0.0, 30.0, 58.0, 60.0]
    log = purchase_log(purchases, days)
    catalogue = ItemCatalogue.from_purchases(log)

    recent = PopularityRecommender.recent(log, catalogue, days=30.0)
    all_time = PopularityRecommender.all_time(catalogue)

    def named(recommender: PopularityRecommender) -> list[str]:
        return [catalogue.item_ids[i] for i in ranking(recommender, [1], catalogue)]

    # EDGE was bought exactly 30 days before the last purchase: it counts.
    assert named(recent) == ["NEW", "EDGE", "STAPLE", "SEASONAL", "RARE"]
    assert named(all_time) == ["STAPLE", "SEASONAL", "NEW", "EDGE", "RARE"]


def test_recent_popularity_of_an_empty_window_is_all_time_popularity() -> None:
    catalogue = numbered_catalogue([5, 3, 1])
    empty = purchase_log([])

    recent = PopularityRecommender.recent(empty, catalogue)

    assert ranking(recent, [1], catalogue) == [1, 2, 3]


def test_repeat_ranks_own_purchases_by_count_then_recency_before_anything_else() -> (
    None
):
    catalogue = numbered_catalogue([90, 80, 70, 60, 50, 40, 30, 20])
    # Twice each: 3 (last at 4) and 6 (last at 6); once: 8 (at 1), 5 (at 5).
    history = [8, 3, 6, 3, 5, 6]

    ranked = ranking(RepeatRecommender(catalogue), history, catalogue)

    assert ranked == [6, 3, 5, 8, 1, 2, 4, 7]


def test_repeat_falls_back_to_popularity_without_a_history_of_its_own() -> None:
    catalogue = numbered_catalogue([9, 7, 5])

    assert ranking(RepeatRecommender(catalogue), [0, 0], catalogue) == [1, 2, 3]


def test_co_occurrence_ranks_products_bought_with_the_history_first() -> None:
    catalogue = numbered_catalogue([90, 80, 70, 60, 50, 40, 30, 20])
    training = [[5, 7], [7, 5, 1], [5, 8], [6, 2], [2, 6], [2, 6, 3], [2, 4]]

    recommender = CoOccurrenceRecommender.fit(training, catalogue)

    # With 5: 7 twice, 1 and 8 once each (1 before 8 by popularity).
    assert ranking(recommender, [5], catalogue)[:3] == [7, 1, 8]
    # With 6 as well: 2 three times and 3 once come in too.
    both = ranking(recommender, [6, 5], catalogue)
    assert set(both[:5]) == {7, 1, 8, 2, 3}
    assert both[5:] == [4, 5, 6]


def test_co_occurrence_falls_back_to_popularity_for_an_unseen_pairing() -> None:
    catalogue = numbered_catalogue([90, 80, 70, 60])
    recommender = CoOccurrenceRecommender.fit([[1, 2]], catalogue)

    assert ranking(recommender, [3], catalogue) == [1, 2, 3, 4]
