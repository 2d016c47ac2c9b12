import dataclasses
import math
from pathlib import Path

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from trainer_snapshots import TINY_CONFIG, purchase_log, successor_sequences

from trainer.baselines import PopularityRecommender
from trainer.evaluation import EvaluationCase, ScoringRecommender, evaluate
from trainer.sequences import IGNORE_LABEL, ItemCatalogue
from trainer.snapshot import PurchaseLog
from trainer.training import future_cross_entropy, train_recommender


def as_log(sequences: list[list[str]]) -> PurchaseLog:
    return purchase_log(
        [(f"C{n}", item) for n, sequence in enumerate(sequences) for item in sequence]
    )


def cases(sequences: list[list[str]], catalogue: ItemCatalogue) -> list[EvaluationCase]:
    return [
        EvaluationCase(f"C{n}", catalogue.encode(s[:-1]), frozenset({s[-1]}))
        for n, s in enumerate(sequences)
    ]


def test_a_model_learns_which_product_follows_which_and_beats_popularity() -> None:
    sequences = successor_sequences(customers=150, length=9, items=40)
    train, validation, test = sequences[:100], sequences[100:120], sequences[120:]
    catalogue = ItemCatalogue.from_purchases(as_log(train))
    histories = [catalogue.encode(s) for s in train]

    trained = train_recommender(
        catalogue, histories, cases(validation, catalogue), TINY_CONFIG
    )

    model = ScoringRecommender(trained.model, TINY_CONFIG.history_len)
    popularity = PopularityRecommender.all_time(catalogue)
    learned = evaluate(model, cases(test, catalogue), catalogue).at[10]
    baseline = evaluate(popularity, cases(test, catalogue), catalogue).at[10]
    assert learned.hit_rate > 0.9
    assert learned.ndcg > 2 * baseline.ndcg


def test_training_with_the_same_seed_gives_the_same_model() -> None:
    sequences = successor_sequences(customers=30, length=6, items=20)
    catalogue = ItemCatalogue.from_purchases(as_log(sequences))
    histories = [catalogue.encode(s) for s in sequences]
    config = dataclasses.replace(TINY_CONFIG, max_epochs=2)
    reseeded = dataclasses.replace(config, seed=config.seed + 1)

    first = train_recommender(catalogue, histories, [], config)
    second = train_recommender(catalogue, histories, [], config)
    other = train_recommender(catalogue, histories, [], reseeded)

    assert [e.train_loss for e in first.epochs] == [e.train_loss for e in second.epochs]
    assert first.best_epoch == second.best_epoch
    weights = first.model.state_dict()
    same = second.model.state_dict()
    assert weights.keys() == same.keys()
    assert all(torch.equal(weights[name], same[name]) for name in weights)
    changed = other.model.state_dict()
    assert not all(torch.equal(weights[name], changed[name]) for name in weights)


def test_training_stops_when_validation_stops_improving() -> None:
    sequences = successor_sequences(customers=30, length=6, items=20)
    catalogue = ItemCatalogue.from_purchases(as_log(sequences))
    histories = [catalogue.encode(s) for s in sequences]
    # Customers whose next product the catalogue lacks: NDCG is always 0.
    hopeless = [EvaluationCase("C0", [1], frozenset({"UNKNOWN"}))]
    config = dataclasses.replace(TINY_CONFIG, max_epochs=10, patience_epochs=2)

    trained = train_recommender(catalogue, histories, hopeless, config)

    assert trained.stop_reason == "no_improvement"
    assert len(trained.epochs) == 3
    assert trained.best_epoch == 1


def test_training_curves_are_written_as_tensorboard_events(tmp_path: Path) -> None:
    sequences = successor_sequences(customers=30, length=6, items=20)
    catalogue = ItemCatalogue.from_purchases(as_log(sequences[:24]))
    histories = [catalogue.encode(s) for s in sequences[:24]]
    config = dataclasses.replace(TINY_CONFIG, max_epochs=3, batch_size=16)

    trained = train_recommender(
        catalogue,
        histories,
        cases(sequences[24:], catalogue),
        config,
        log_dir=tmp_path / "curves",
    )

    assert list((tmp_path / "curves").glob("events.out.tfevents.*"))
    events = EventAccumulator(str(tmp_path / "curves"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {"loss/batch", "loss/epoch", "validation/ndcg", "seconds/epoch"} <= tags
    epoch_losses = events.Scalars("loss/epoch")
    assert [e.step for e in epoch_losses] == [r.epoch for r in trained.epochs]
    assert [e.value for e in epoch_losses] == pytest.approx(
        [r.train_loss for r in trained.epochs], rel=1e-5
    )
    ndcg = [e.value for e in events.Scalars("validation/ndcg")]
    assert ndcg == pytest.approx([r.validation_ndcg for r in trained.epochs])
    # 24 customers, one window each, in batches of 16: two batches an epoch.
    assert len(events.Scalars("loss/batch")) == 2 * len(trained.epochs)


def test_without_a_log_dir_no_event_files_are_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    sequences = successor_sequences(customers=10, length=5, items=10)
    catalogue = ItemCatalogue.from_purchases(as_log(sequences))
    histories = [catalogue.encode(s) for s in sequences]

    train_recommender(
        catalogue, histories, [], dataclasses.replace(TINY_CONFIG, max_epochs=1)
    )

    assert not list(tmp_path.rglob("events.out.tfevents.*"))


def test_the_chosen_epochs_are_run_again_on_the_longer_histories() -> None:
    sequences = successor_sequences(customers=60, length=8, items=20)
    catalogue = ItemCatalogue.from_purchases(as_log(sequences))
    short = [catalogue.encode(s[:5]) for s in sequences[:40]]
    longer = [catalogue.encode(s) for s in sequences[:40]]
    validation = cases(sequences[40:], catalogue)
    config = dataclasses.replace(TINY_CONFIG, max_epochs=3, patience_epochs=3)

    chosen = train_recommender(catalogue, short, validation, config)
    refitted = train_recommender(
        catalogue, short, validation, config, refit_histories=longer
    )
    unvalidated = train_recommender(
        catalogue, short, [], config, refit_histories=longer
    )

    assert refitted.best_epoch == chosen.best_epoch
    assert refitted.refit_epochs == chosen.best_epoch
    assert [e.train_loss for e in refitted.epochs] == [
        e.train_loss for e in chosen.epochs
    ]
    assert not torch.equal(
        refitted.model.item_bias.detach(), chosen.model.item_bias.detach()
    )
    assert unvalidated.refit_epochs == 0


def test_the_loss_over_several_next_purchases_weighs_each_known_one_equally() -> None:
    logits = torch.log(torch.tensor([[0.5, 0.25, 0.25], [0.1, 0.1, 0.8]]))
    futures = torch.tensor([[1, 2], [3, IGNORE_LABEL]])

    loss = future_cross_entropy(logits, futures)

    expected = -((math.log(0.5) + math.log(0.25)) / 2 + math.log(0.8)) / 2
    assert loss.item() == pytest.approx(expected)
    weighed = future_cross_entropy(logits, futures, torch.tensor([1.0, 3.0]))
    expected_weighed = -((math.log(0.5) + math.log(0.25)) / 2 + 3 * math.log(0.8)) / 4
    assert weighed.item() == pytest.approx(expected_weighed)
    single = future_cross_entropy(logits, futures[:, :1])
    assert single.item() == pytest.approx(
        torch.nn.functional.cross_entropy(logits, torch.tensor([0, 2])).item()
    )
