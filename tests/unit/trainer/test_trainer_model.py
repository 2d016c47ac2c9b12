import torch
from trainer_snapshots import TINY_CONFIG

from trainer.model import PADDING_SCORE, SequentialRecommender, to_torchscript

ITEMS = 30


def model() -> SequentialRecommender:
    torch.manual_seed(3)
    return SequentialRecommender(ITEMS, TINY_CONFIG).eval()


def histories(*rows: list[int]) -> torch.Tensor:
    length = TINY_CONFIG.max_len
    return torch.tensor([[0] * (length - len(row)) + row for row in rows])


def test_left_padding_does_not_change_the_scores_of_the_last_position() -> None:
    recommender = model()
    history = [4, 9, 2]

    with torch.no_grad():
        unpadded = recommender(torch.tensor([history]))
        padded = recommender(histories(history))

    assert torch.allclose(unpadded, padded, atol=1e-5)


def test_a_batch_scores_each_history_as_it_would_alone() -> None:
    recommender = model()
    rows = [[4, 9, 2], [1, 2, 3, 4, 5, 6, 7, 8], [17]]

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


def test_the_traced_model_scores_like_the_eager_one_for_any_batch() -> None:
    recommender = model()
    traced = to_torchscript(recommender)
    full = list(range(1, TINY_CONFIG.max_len + 1))
    batches = [
        histories([5]),
        histories(full, full[::-1]),
        histories([1, 2], full, [], [29, 28, 27], [7] * 3),
    ]

    with torch.no_grad():
        for batch in batches:
            assert torch.allclose(traced(batch), recommender(batch), atol=1e-5)
