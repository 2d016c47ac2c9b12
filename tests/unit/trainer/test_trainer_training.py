from trainer_snapshots import TINY_CONFIG, successor_sequences

from trainer.evaluation import (
    EvaluationCase,
    PopularityRecommender,
    ScoringRecommender,
    evaluate,
)
from trainer.sequences import ItemCatalogue
from trainer.snapshot import PurchaseLog
from trainer.training import train_recommender


def as_log(sequences: list[list[str]]) -> PurchaseLog:
    users = [f"C{n}" for n, sequence in enumerate(sequences) for _ in sequence]
    items = [item for sequence in sequences for item in sequence]
    return PurchaseLog(users, items, ["" for _ in items])


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

    model = ScoringRecommender(trained.model, TINY_CONFIG.max_len)
    popularity = PopularityRecommender(catalogue)
    learned = evaluate(model, cases(test, catalogue), catalogue, cutoff=10)
    baseline = evaluate(popularity, cases(test, catalogue), catalogue, cutoff=10)
    assert learned.hit_rate > 0.9
    assert learned.ndcg > 2 * baseline.ndcg


def test_training_with_the_same_seed_gives_the_same_model() -> None:
    sequences = successor_sequences(customers=30, length=6, items=20)
    catalogue = ItemCatalogue.from_purchases(as_log(sequences))
    histories = [catalogue.encode(s) for s in sequences]
    config = TINY_CONFIG.__class__(**{**TINY_CONFIG.as_dict(), "max_epochs": 2})

    first = train_recommender(catalogue, histories, [], config)
    second = train_recommender(catalogue, histories, [], config)

    assert [e.train_loss for e in first.epochs] == [e.train_loss for e in second.epochs]
    assert first.best_epoch == second.best_epoch


def test_training_stops_when_validation_stops_improving() -> None:
    sequences = successor_sequences(customers=30, length=6, items=20)
    catalogue = ItemCatalogue.from_purchases(as_log(sequences))
    histories = [catalogue.encode(s) for s in sequences]
    # Customers whose next product the catalogue lacks: NDCG is always 0.
    hopeless = [EvaluationCase("C0", [1], frozenset({"UNKNOWN"}))]
    config = TINY_CONFIG.__class__(
        **{**TINY_CONFIG.as_dict(), "max_epochs": 10, "patience_epochs": 2}
    )

    trained = train_recommender(catalogue, histories, hopeless, config)

    assert trained.stop_reason == "no_improvement"
    assert len(trained.epochs) == 3
    assert trained.best_epoch == 1
