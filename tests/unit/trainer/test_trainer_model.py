import math

import pytest
import torch
from trainer_snapshots import TINY_CONFIG

from trainer.model import PADDING_SCORE, SequentialRecommender, to_torchscript

ITEMS = 30
LENGTH = TINY_CONFIG.history_len
# Traced and eager models run the same float32 operations, maybe fused
# differently; they agree far closer than scores differ between products.
TRACED_TOLERANCE = 1e-5


def model() -> SequentialRecommender:
    torch.manual_seed(3)
    recommender = SequentialRecommender(ITEMS, TINY_CONFIG).eval()
    with torch.no_grad():
        # Weights of the repeat features that vary with the customer.
        recommender.repeat_weights.weight.normal_(std=0.5)
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
        features = recommender.history_features(batch)[:, -1]
        trained = recommender.product_logits(hidden, features)
        served = recommender(batch)

    assert features.shape == (3, 2, ITEMS - 1)
    assert torch.allclose(features, recommender.last_history_features(batch))
    assert torch.allclose(trained, served[:, 1:], atol=1e-5)


def test_training_features_at_each_position_count_only_the_purchases_so_far() -> None:
    recommender = model()
    batch = histories([5, 6, 5, 6, 5, 8, 1, 2, 3, 5, 5, 6], [7, 7, 3, 7])
    start = LENGTH - TINY_CONFIG.max_len

    features = recommender.history_features(batch)

    assert features.shape == (2, TINY_CONFIG.max_len, 2, ITEMS - 1)
    for position in range(TINY_CONFIG.max_len):
        so_far = batch[:, : start + position + 1]
        expected = recommender.last_history_features(so_far)
        assert torch.allclose(features[:, position], expected)


def test_repeat_features_count_purchases_and_how_recent_the_last_one_was() -> None:
    recommender = model()
    # Positions 6..12: 3, 5, 3, 7, 3, 5, 2.
    batch = histories([3, 5, 3, 7, 3, 5, 2])

    features = recommender.last_history_features(batch)[0]

    log_count, recency = features
    # Column i is product i + 1.
    expected_counts = {3: 3, 5: 2, 7: 1, 2: 1}
    expected_recency = {3: 1 / 3, 5: 1 / 2, 7: 1 / 4, 2: 1.0}
    for item in range(1, ITEMS):
        count = expected_counts.get(item, 0)
        assert log_count[item - 1].item() == pytest.approx(math.log1p(count))
        assert recency[item - 1].item() == pytest.approx(expected_recency.get(item, 0))


def test_repeat_features_midway_see_the_history_up_to_that_purchase() -> None:
    recommender = model()
    batch = histories([3, 5, 3, 7, 3, 5, 2])
    start = LENGTH - TINY_CONFIG.max_len
    # The fourth purchase, 7, is at position 9 of 12.
    at_seven = 9 - start - 1

    log_count, recency = recommender.history_features(batch)[0, at_seven]

    assert log_count[3 - 1].item() == pytest.approx(math.log1p(2))
    assert log_count[5 - 1].item() == pytest.approx(math.log1p(1))
    assert log_count[2 - 1].item() == 0.0
    assert recency[7 - 1].item() == pytest.approx(1.0)
    assert recency[3 - 1].item() == pytest.approx(1 / 2)
    assert recency[5 - 1].item() == pytest.approx(1 / 3)
    assert recency[2 - 1].item() == 0.0


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
