import math

import pytest
import torch
from trainer_snapshots import TINY_CONFIG

from trainer.model import (
    HISTORY_FEATURES,
    PADDING_SCORE,
    SequentialRecommender,
    history_features,
    to_torchscript,
)

ITEMS = 30
LENGTH = TINY_CONFIG.history_len
# Traced and eager models run the same float32 operations, maybe fused
# differently; they agree far closer than scores differ between products.
TRACED_TOLERANCE = 1e-5


def model() -> SequentialRecommender:
    torch.manual_seed(3)
    recommender = SequentialRecommender(ITEMS, TINY_CONFIG).eval()
    with torch.no_grad():
        # Repeat weights that vary with the customer and the product.
        recommender.repeat_weights.weight.normal_(std=0.5)
        recommender.item_repeat_weights.weight.normal_(std=0.5)
    return recommender


def histories(*rows: list[int]) -> torch.Tensor:
    return torch.tensor([[0] * (LENGTH - len(row)) + row for row in rows])


def test_left_padding_does_not_change_the_scores_of_the_last_position() -> None:
    recommender = model()
    short = [4, 9, 2]
    # Longer than the transformer's window, shorter than the history read.
    long = [4, 9, 2, 4, 11, 7, 7, 4, 3, 9]

    with torch.no_grad():
        for history in (short, long):
            unpadded = recommender(torch.tensor([history]))
            padded = recommender(histories(history))
            assert torch.allclose(unpadded, padded, atol=1e-5)


def test_a_batch_scores_each_history_as_it_would_alone() -> None:
    recommender = model()
    rows = [[4, 9, 2], list(range(1, LENGTH + 1)), [17]]

    with torch.no_grad():
        together = recommender(histories(*rows))
        alone = torch.cat([recommender(histories(row)) for row in rows])

    assert torch.allclose(together, alone, atol=1e-5)


def test_every_catalogue_item_gets_a_score_and_padding_the_lowest() -> None:
    with torch.no_grad():
        scores = model()(histories([3, 5], []))

    assert scores.shape == (2, ITEMS)
    assert torch.isfinite(scores).all()
    assert (scores[:, 0] == PADDING_SCORE).all()
    assert (scores[:, 1:] > PADDING_SCORE).all()


def test_training_scores_at_the_last_position_are_the_served_scores() -> None:
    recommender = model()
    batch = histories([4, 9, 2], [5, 6, 5, 6, 5, 8, 1, 2, 3, 5, 5, 6], [29])

    with torch.no_grad():
        hidden = recommender.hidden_states(batch)[:, -1]
        # Training scores every position of the label window at once.
        features = history_features(batch, TINY_CONFIG.max_len)[:, -1]
        trained = recommender.product_logits(hidden, batch, features)
        served = recommender(batch)

    assert torch.allclose(trained, served[:, 1:], atol=1e-5)


def test_training_features_at_each_position_count_only_the_purchases_so_far() -> None:
    batch = histories([5, 6, 5, 6, 5, 8, 1, 2, 3, 5, 5, 6], [7, 7, 3, 7])
    positions = TINY_CONFIG.max_len

    features = history_features(batch, positions)

    assert features.shape == (2, positions, LENGTH, len(HISTORY_FEATURES))
    for position in range(positions):
        now = LENGTH - positions + position
        so_far = history_features(batch[:, : now + 1], 1)[:, -1]
        assert torch.equal(features[:, position, : now + 1], so_far)
        assert not features[:, position, now + 1 :].any()


def per_product(history: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
    """Slot features ``[S, F]`` summed onto the catalogue, ``[F, ITEMS]``."""
    columns = history[None, :].expand(features.shape[1], -1)
    return torch.zeros(features.shape[1], ITEMS).scatter_add(1, columns, features.T)


def test_repeat_features_count_purchases_and_how_recent_the_last_one_was() -> None:
    # Slots 5..11 of 12: 3, 5, 3, 7, 3, 5, 2.
    batch = histories([3, 5, 3, 7, 3, 5, 2])

    features = history_features(batch, 1)[0, -1]

    log_count, recency = per_product(batch[0], features)
    expected_counts = {3: 3, 5: 2, 7: 1, 2: 1}
    expected_recency = {3: 1 / 3, 5: 1 / 2, 7: 1 / 4, 2: 1.0}
    for item in range(1, ITEMS):
        count = expected_counts.get(item, 0)
        assert log_count[item].item() == pytest.approx(math.log1p(count))
        assert recency[item].item() == pytest.approx(expected_recency.get(item, 0))
    # One slot per product bought carries its features: its last purchase.
    assert features.any(dim=-1).nonzero().flatten().tolist() == [8, 9, 10, 11]


def test_repeat_features_midway_see_the_history_up_to_that_purchase() -> None:
    batch = histories([3, 5, 3, 7, 3, 5, 2])
    positions = TINY_CONFIG.max_len
    # The fourth purchase, 7, is in slot 8 of 12.
    at_seven = 8 - (LENGTH - positions)

    features = history_features(batch, positions)[0, at_seven]

    log_count, recency = per_product(batch[0], features)
    assert log_count[3].item() == pytest.approx(math.log1p(2))
    assert log_count[5].item() == pytest.approx(math.log1p(1))
    assert log_count[2].item() == 0.0
    assert recency[7].item() == pytest.approx(1.0)
    assert recency[3].item() == pytest.approx(1 / 2)
    assert recency[5].item() == pytest.approx(1 / 3)
    assert recency[2].item() == 0.0


def test_the_traced_model_scores_like_the_eager_one_for_batches_of_1_2_and_5() -> None:
    recommender = model()
    traced = to_torchscript(recommender)
    full = list(range(1, LENGTH + 1))
    batches = [
        histories([5]),
        histories(full, full[::-1]),
        histories([1, 2], full, [], [29, 28, 27, 29, 29], [7] * LENGTH),
    ]

    with torch.no_grad():
        for batch in batches:
            traced_scores = traced(batch)
            assert traced_scores.shape == (len(batch), ITEMS)
            assert torch.allclose(
                traced_scores, recommender(batch), rtol=0, atol=TRACED_TOLERANCE
            )
