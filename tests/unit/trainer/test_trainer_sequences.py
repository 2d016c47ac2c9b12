import pytest
import torch

from trainer.errors import SnapshotError
from trainer.sequences import (
    IGNORE_LABEL,
    ItemCatalogue,
    basket_weights,
    customer_histories,
    future_purchases,
    label_weights,
    left_pad,
    training_windows,
)
from trainer.snapshot import PurchaseLog


def log(*purchases: tuple[str, str, str]) -> PurchaseLog:
    return PurchaseLog(
        user_ids=[user for user, _, _ in purchases],
        item_ids=[item for _, item, _ in purchases],
        item_descriptions=[text for _, _, text in purchases],
        event_times=[60.0 * n for n in range(len(purchases))],
    )


def test_the_catalogue_numbers_products_by_purchases_after_padding() -> None:
    catalogue = ItemCatalogue.from_purchases(
        log(("a", "JAR", "jar"), ("a", "MUG", "old mug"), ("b", "MUG", "mug"))
    )

    assert catalogue.item_ids == ["", "MUG", "JAR"]
    assert catalogue.item_descriptions == ["", "mug", "jar"]
    assert catalogue.popular_items(5) == [1, 2]
    assert len(catalogue) == 3


def test_an_empty_training_split_is_refused() -> None:
    with pytest.raises(SnapshotError):
        ItemCatalogue.from_purchases(log())


def test_histories_follow_purchase_order_across_splits_and_skip_unknown_items() -> None:
    train = log(("a", "MUG", ""), ("b", "JAR", ""), ("b", "MUG", ""))
    catalogue = ItemCatalogue.from_purchases(train)
    later = log(("a", "NEW", ""), ("a", "JAR", ""))

    histories = customer_histories([train, later], catalogue)

    assert histories == {"a": [1, 2], "b": [2, 1]}


def test_left_padding_keeps_the_most_recent_items() -> None:
    assert left_pad([1, 2, 3], 5) == [0, 0, 1, 2, 3]
    assert left_pad([1, 2, 3], 2) == [2, 3]


def test_every_purchase_after_the_first_is_a_label_exactly_once() -> None:
    history = list(range(1, 12))

    inputs, labels = training_windows([history, [5]], max_len=4)

    assigned = labels[labels != IGNORE_LABEL].tolist()
    assert sorted(assigned) == history[1:]
    assert inputs.shape == labels.shape == (3, 4)
    next_items = dict(
        zip(inputs.flatten().tolist(), labels.flatten().tolist(), strict=True)
    )
    assert all(next_items[n] == n + 1 for n in history[:-1])


def test_longer_inputs_end_where_their_label_window_ends() -> None:
    history = list(range(1, 21))

    inputs, labels = training_windows([history], max_len=4, history_len=7)

    assert inputs.shape == (5, 7)
    assert labels.shape == (5, 4)
    assert inputs[0].tolist() == [13, 14, 15, 16, 17, 18, 19]
    assert labels[0].tolist() == [17, 18, 19, 20]
    assert inputs[-1].tolist() == [0, 0, 0, 0, 1, 2, 3]
    assert labels[-1].tolist() == [IGNORE_LABEL, 2, 3, 4]


def test_with_longer_inputs_each_label_follows_its_input_and_comes_once() -> None:
    histories = [list(range(1, 21)), list(range(31, 37)), [40, 41]]

    inputs, labels = training_windows(histories, max_len=4, history_len=9)

    assigned = labels[labels != IGNORE_LABEL].tolist()
    assert sorted(assigned) == sorted(n for h in histories for n in h[1:])
    labelled = labels != IGNORE_LABEL
    aligned = inputs[:, -4:]
    assert (labels[labelled] == aligned[labelled] + 1).all()
    # Inputs before the label window are the purchases just before it.
    for row in inputs.tolist():
        bought = [n for n in row if n != 0]
        assert bought == list(range(bought[0], bought[0] + len(bought)))


def test_inputs_shorter_than_the_label_window_are_refused() -> None:
    with pytest.raises(ValueError):
        training_windows([[1, 2, 3]], max_len=4, history_len=3)


def test_no_history_long_enough_to_learn_from_is_refused() -> None:
    with pytest.raises(SnapshotError):
        training_windows([[1], [2]], max_len=4)


def test_future_purchases_list_the_next_ones_after_each_label() -> None:
    history = [1, 2, 3, 4, 5]
    _, labels = training_windows([history], max_len=3)

    futures = future_purchases([history], max_len=3, horizon=2)

    assert futures.shape == (2, 3, 2)
    assert torch.equal(futures[..., 0], labels)
    # The window ending at the history's end: labels 3, 4, 5.
    assert futures[0].tolist() == [[3, 4], [4, 5], [5, IGNORE_LABEL]]
    # The one before it holds the single label 2 after padding.
    assert futures[1].tolist() == [
        [IGNORE_LABEL, IGNORE_LABEL],
        [IGNORE_LABEL, IGNORE_LABEL],
        [2, 3],
    ]


def test_a_horizon_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="horizon"):
        future_purchases([[1, 2]], max_len=2, horizon=0)


def test_a_basket_starts_at_each_new_event_time_of_a_customer() -> None:
    purchases = PurchaseLog(
        user_ids=["A", "A", "B", "A", "A", "B"],
        item_ids=["x", "y", "x", "gone", "z", "y"],
        item_descriptions=[""] * 6,
        event_times=[60.0, 60.0, 60.0, 120.0, 120.0, 180.0],
    )
    catalogue = ItemCatalogue.from_purchases(
        log(("A", "x", ""), ("A", "y", ""), ("A", "z", ""))
    )

    weights = basket_weights([purchases], catalogue)

    assert customer_histories([purchases], catalogue) == {"A": [1, 2, 3], "B": [1, 2]}
    # A's unknown product is skipped, but its basket still starts at 120.
    assert weights == {"A": [1.0, 0.0, 1.0], "B": [1.0, 1.0]}


def test_with_a_half_life_older_baskets_weigh_less() -> None:
    day = 86_400.0
    purchases = PurchaseLog(
        user_ids=["A", "A", "A"],
        item_ids=["x", "y", "x"],
        item_descriptions=[""] * 3,
        event_times=[0.0, 10 * day, 20 * day],
    )
    catalogue = ItemCatalogue.from_purchases(purchases)

    weights = basket_weights([purchases], catalogue, half_life_days=10.0)

    assert weights["A"] == pytest.approx([0.25, 0.5, 1.0])


def test_with_weights_only_labels_that_start_a_basket_are_kept() -> None:
    history = [1, 2, 3, 4, 5]
    weights = [1.0, 0.0, 0.5, 0.0, 1.0]

    futures = future_purchases([history], max_len=4, horizon=2, weights=[weights])
    weighed = label_weights([weights], max_len=4)

    assert futures[0, :, 0].tolist() == [IGNORE_LABEL, 3, IGNORE_LABEL, 5]
    assert futures[0, 1].tolist() == [3, 4]
    assert weighed[0].tolist() == [0.0, 0.5, 0.0, 1.0]
    assert weighed.shape == futures.shape[:2]
