import asyncio
import math
import random
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch
from inference_fakes import (
    ITEM_IDS,
    MAX_LEN,
    MeanOfPurchases,
    RecordingScorer,
    ScoreFunction,
    serving_model,
    traced,
)

from inference.artifact import ArtifactMetadata, load_model, write_artifact
from inference.batching import MicroBatcher
from inference.errors import InvalidRequestError, NotReadyError
from inference.history import PurchaseHistory
from inference.metrics import InferenceMetrics
from inference.model import ModelHolder, ServingModel
from inference.recommender import (
    POPULARITY_VERSION,
    AnswerSource,
    FallbackReason,
    Recommendation,
    Recommender,
    ServingFailure,
    ShopperQuery,
)
from inference.server import scoring_device

SHOPPER = "17850"


def recommender_with(
    model: ServingModel | None, purchases: list[tuple[str, str]] = ()
) -> Recommender:
    holder = ModelHolder()
    if model is not None:
        holder.swap(model)
    history = PurchaseHistory(max_items_per_user=10)
    for user_id, item_id in purchases:
        history.record(user_id, item_id)
    return Recommender(holder, history)


def ascending_scores() -> list[float]:
    """The last catalogue item scores highest, the first real item lowest."""
    return [float(n) for n in range(len(ITEM_IDS))]


def test_an_empty_user_id_is_refused_as_invalid() -> None:
    recommender = recommender_with(serving_model(ascending_scores()))

    with pytest.raises(InvalidRequestError, match="user_id must not be empty"):
        recommender.recommend("", 3)


@pytest.mark.parametrize("k", [0, -1, 101])
def test_k_outside_1_to_100_is_refused_with_the_bounds_in_the_message(k: int) -> None:
    recommender = recommender_with(serving_model(ascending_scores()))

    with pytest.raises(InvalidRequestError, match=f"between 1 and 100, got {k}"):
        recommender.recommend(SHOPPER, k)


@pytest.mark.parametrize("k", [1, 100])
def test_k_at_either_bound_is_answered_in_full(k: int) -> None:
    item_ids = ["", *(f"2{n:04d}" for n in range(150))]
    scores = [random.random() for _ in item_ids]
    model = serving_model(scores, item_ids=item_ids)
    recommender = recommender_with(model, [(SHOPPER, "20007")])

    answer = recommender.recommend(SHOPPER, k)

    assert len(answer.items) == k


def test_the_model_ranks_items_best_score_first() -> None:
    scores = [0.0, 0.2, 0.9, 0.1, 0.5, 0.3, 0.8, 0.4]
    recommender = recommender_with(serving_model(scores), [(SHOPPER, "85123A")])

    answer = recommender.recommend(SHOPPER, 3)

    ranked = sorted(range(1, len(scores)), key=lambda i: -scores[i])[:3]
    assert [item.item_id for item in answer.items] == [ITEM_IDS[i] for i in ranked]
    assert [item.score for item in answer.items] == pytest.approx(
        [scores[i] for i in ranked]
    )
    assert answer.model_version == "20261203T190102Z-aaaaaaaa"
    assert not answer.fallback


def test_excluded_items_never_appear_even_when_the_model_scores_them_highest() -> None:
    recommender = recommender_with(
        serving_model(ascending_scores()), [(SHOPPER, "85123A")]
    )
    best_two = [ITEM_IDS[-1], ITEM_IDS[-2]]

    answer = recommender.recommend(SHOPPER, 3, exclude=[*best_two, "NOT-SOLD"])

    returned = [item.item_id for item in answer.items]
    assert not set(returned) & set(best_two)
    assert returned == [ITEM_IDS[-3], ITEM_IDS[-4], ITEM_IDS[-5]]


def test_padding_is_never_recommended_even_when_it_scores_highest() -> None:
    scores = [100.0, *([1.0] * (len(ITEM_IDS) - 1))]
    recommender = recommender_with(serving_model(scores), [(SHOPPER, "85123A")])

    answer = recommender.recommend(SHOPPER, len(ITEM_IDS) - 1)

    assert "" not in [item.item_id for item in answer.items]
    assert len(answer.items) == len(ITEM_IDS) - 1


def test_a_score_of_nan_for_padding_alone_is_masked_not_a_failure() -> None:
    scores = [math.nan, *ascending_scores()[1:]]
    recommender = recommender_with(serving_model(scores), [(SHOPPER, "85123A")])

    answer = recommender.recommend(SHOPPER, 2)

    assert answer.source is AnswerSource.MODEL
    assert [item.item_id for item in answer.items] == [ITEM_IDS[-1], ITEM_IDS[-2]]
    assert recommender.failure() is None


@pytest.mark.parametrize("seed", range(5))
def test_every_answer_holds_k_distinct_catalogue_items(seed: int) -> None:
    rng = random.Random(seed)
    item_ids = ["", *(f"8{n:04d}" for n in range(300))]
    scores = [rng.uniform(-5, 5) for _ in item_ids]
    model = serving_model(scores, item_ids=item_ids)
    recommender = recommender_with(model, [(SHOPPER, item_ids[5])])
    exclude = rng.sample(item_ids[1:], 40)
    k = rng.randint(1, 100)

    answer = recommender.recommend(SHOPPER, k, exclude=exclude)

    returned = [item.item_id for item in answer.items]
    assert len(returned) == k
    assert len(set(returned)) == k
    assert set(returned) <= set(item_ids[1:]) - set(exclude)


def test_the_model_sees_the_last_max_len_known_purchases_left_padded() -> None:
    model = serving_model(ascending_scores())
    purchases = [
        (SHOPPER, "85123A"),
        (SHOPPER, "71053"),
        (SHOPPER, "NOT-IN-CATALOGUE"),
        (SHOPPER, "84406B"),
        (SHOPPER, "84029G"),
        (SHOPPER, "84029E"),
        ("12583", "22752"),
    ]
    recommender = recommender_with(model, purchases)

    recommender.recommend(SHOPPER, 2)
    recommender.recommend("12583", 2)

    scorer = model.scorer
    assert isinstance(scorer, RecordingScorer)
    assert scorer.inputs[0].tolist() == [[2, 3, 4, 5]]
    assert scorer.inputs[1].tolist() == [[0] * (MAX_LEN - 1) + [6]]
    assert scorer.inputs[0].dtype == torch.long


def test_a_shopper_without_known_purchases_gets_popularity_from_the_catalogue() -> None:
    model = serving_model(ascending_scores(), popular_items=(3, 1, 2))
    recommender = recommender_with(model, [("12583", "NOT-IN-CATALOGUE")])

    answer = recommender.recommend(SHOPPER, 2)

    assert answer.fallback_reason is FallbackReason.NO_HISTORY
    assert answer.model_version == POPULARITY_VERSION
    assert [item.item_id for item in answer.items] == [ITEM_IDS[3], ITEM_IDS[1]]


def test_live_best_sellers_come_before_the_models_popular_items() -> None:
    model = serving_model(ascending_scores(), popular_items=(1, 2, 3))
    purchases = [("12583", "22752"), ("13047", "22752"), ("12583", "84029E")]
    recommender = recommender_with(model, purchases)

    answer = recommender.recommend(SHOPPER, 4)

    assert [item.item_id for item in answer.items] == [
        "22752",
        "84029E",
        ITEM_IDS[1],
        ITEM_IDS[2],
    ]


def test_without_a_model_popularity_answers_from_purchase_counts() -> None:
    purchases = [("12583", "22752"), ("13047", "22752"), (SHOPPER, "84029E")]
    recommender = recommender_with(None, purchases)

    answer = recommender.recommend(SHOPPER, 5)

    assert answer.fallback_reason is FallbackReason.NO_MODEL
    assert answer.fallback
    assert answer.model_version == POPULARITY_VERSION
    assert [(i.item_id, i.score) for i in answer.items] == [
        ("22752", 2.0),
        ("84029E", 1.0),
    ]


def test_popularity_never_offers_an_excluded_item() -> None:
    model = serving_model(ascending_scores(), popular_items=(1, 2, 3))
    recommender = recommender_with(model, [("12583", "71053")])

    answer = recommender.recommend(SHOPPER, 2, exclude=["71053", "85123A"])

    assert [item.item_id for item in answer.items] == ["84406B"]


def test_with_no_model_and_no_purchases_recommend_is_not_ready() -> None:
    recommender = recommender_with(None)

    assert not recommender.can_answer()
    with pytest.raises(NotReadyError) as raised:
        recommender.recommend(SHOPPER, 3)
    assert raised.value.retriable


# The same answer alone or in any batch, from a real traced model

# Float32 sums may run in another order in a bigger batch; scores agree to this.
SCORE_TOLERANCE = {"rel": 1e-5, "abs": 1e-6}
WIDE_CATALOGUE = ("", *(f"2{n:04d}" for n in range(1, 61)))
WIDE_MAX_LEN = 6


@pytest.fixture
def traced_recommender(tmp_path: Path) -> Recommender:
    """A traced model of 60 items; twelve shoppers with 1 to 9 purchases each."""
    metadata = ArtifactMetadata(
        model_name="sequential-recommender",
        version="20261204T101500Z-5e9f0a11",
        max_len=WIDE_MAX_LEN,
        item_ids=WIDE_CATALOGUE,
        item_descriptions=tuple(f"item {i}" for i in WIDE_CATALOGUE),
        popular_items=(1, 2, 3),
    )
    module = traced(MeanOfPurchases(len(WIDE_CATALOGUE)), WIDE_MAX_LEN)
    ready = write_artifact(module, metadata, tmp_path / "model.pt")
    holder = ModelHolder()
    holder.swap(load_model(ready, scoring_device("auto")))

    history = PurchaseHistory(max_items_per_user=20)
    rng = random.Random(3)
    for shopper in range(12):
        for item_id in rng.sample(WIDE_CATALOGUE[1:], shopper % 9 + 1):
            history.record(f"1{shopper:04d}", item_id)
    return Recommender(holder, history)


def wide_queries() -> list[ShopperQuery]:
    rng = random.Random(5)
    queries = [
        ShopperQuery(
            request_id=f"q{shopper}",
            user_id=f"1{shopper:04d}",
            k=rng.randint(1, 20),
            exclude=frozenset(rng.sample(WIDE_CATALOGUE[1:], shopper % 4)),
        )
        for shopper in range(12)
    ]
    # The same shopper twice in one batch, asking differently.
    queries.append(ShopperQuery(request_id="q0-again", user_id="10000", k=40))
    return queries


def assert_same_answer(got: object, alone: object) -> None:
    assert isinstance(got, Recommendation)
    assert isinstance(alone, Recommendation)
    assert [i.item_id for i in got.items] == [i.item_id for i in alone.items]
    assert [i.score for i in got.items] == pytest.approx(
        [i.score for i in alone.items], **SCORE_TOLERANCE
    )
    assert got.model_version == alone.model_version


def test_a_shoppers_answer_is_the_same_alone_or_in_any_batch(
    traced_recommender: Recommender,
) -> None:
    queries = wide_queries()
    alone = {
        q.request_id: traced_recommender.recommend_batch([q])[q.request_id]
        for q in queries
    }
    rng = random.Random(8)
    batches = [queries, queries[::-1], queries[:2], queries[5:9]]
    batches += [rng.sample(queries, rng.randint(2, len(queries))) for _ in range(4)]

    for batch in batches:
        answers = traced_recommender.recommend_batch(batch)

        assert set(answers) == {q.request_id for q in batch}
        for query in batch:
            assert_same_answer(answers[query.request_id], alone[query.request_id])


def test_the_traced_model_answers_each_shopper_differently(
    traced_recommender: Recommender,
) -> None:
    answers = traced_recommender.recommend_batch(wide_queries())

    firsts = {
        answer.items[0].item_id
        for answer in answers.values()
        if isinstance(answer, Recommendation)
    }
    assert len(firsts) > 3  # a mix-up between rows could not go unseen


def test_batched_callers_each_get_their_own_answer_through_the_batcher(
    traced_recommender: Recommender, metrics: InferenceMetrics
) -> None:
    queries = wide_queries()
    alone = {
        q.request_id: traced_recommender.recommend_batch([q])[q.request_id]
        for q in queries
    }

    async def all_at_once() -> list[Recommendation]:
        with ThreadPoolExecutor(2) as executor:
            batcher = MicroBatcher[ShopperQuery, Recommendation](
                traced_recommender.recommend_batch,
                executor=executor,
                metrics=metrics,
                max_batch_size=5,
                max_delay_seconds=0.0,
                concurrent_batches=2,
            )
            await batcher.start()
            try:
                return list(await asyncio.gather(*map(batcher.submit, queries)))
            finally:
                await batcher.stop()

    answers = asyncio.run(all_at_once())

    for query, answer in zip(queries, answers, strict=True):
        assert_same_answer(answer, alone[query.request_id])


# Fallbacks per request: the previous version, then popularity

CURRENT = "20261204T190102Z-cccccccc"
PREVIOUS = "20261203T190102Z-pppppppp"
NAN_SCORES = [0.0, 1.0, math.nan, 3.0, 4.0, 5.0, 6.0, 7.0]


def nan_for_shoppers_who_last_bought(item_index: int) -> ScoreFunction:
    """Ascending scores, but NaN for rows whose last purchase is ``item_index``."""

    def scores_of(item_seq: torch.Tensor) -> torch.Tensor:
        scores = torch.tensor(ascending_scores()).repeat(item_seq.shape[0], 1)
        scores[item_seq[:, -1] == item_index, 3] = math.nan
        return scores

    return ScoreFunction(scores_of)


def failing(item_seq: torch.Tensor) -> torch.Tensor:
    raise RuntimeError("CUDA error: an illegal memory access was encountered")


def two_versions(current: ServingModel, previous: ServingModel | None) -> ModelHolder:
    holder = ModelHolder()
    if previous is not None:
        holder.swap(previous)
    holder.swap(current)
    return holder


def recommender_over(
    holder: ModelHolder, purchases: list[tuple[str, str]]
) -> Recommender:
    history = PurchaseHistory(max_items_per_user=10)
    for user_id, item_id in purchases:
        history.record(user_id, item_id)
    return Recommender(holder, history)


def test_the_previous_version_stays_loaded_after_a_swap() -> None:
    old = serving_model(ascending_scores(), version=PREVIOUS)
    new = serving_model(ascending_scores(), version=CURRENT)
    holder = two_versions(new, old)

    assert holder.serving() == (new, old)
    assert holder.current is new
    assert holder.previous is old


def test_non_finite_scores_fall_back_to_the_previous_version() -> None:
    previous_scores = [0.0, 7.0, 6.0, 5.0, 4.0, 3.0, 2.0, 1.0]
    holder = two_versions(
        serving_model(NAN_SCORES, version=CURRENT),
        serving_model(previous_scores, version=PREVIOUS),
    )
    recommender = recommender_over(holder, [(SHOPPER, "85123A")])

    answer = recommender.recommend(SHOPPER, 2, exclude=["71053"])

    assert answer.source is AnswerSource.PREVIOUS_MODEL
    assert answer.fallback
    assert answer.fallback_reason is FallbackReason.NON_FINITE_SCORES
    assert answer.model_version == PREVIOUS
    assert [item.item_id for item in answer.items] == ["85123A", "84406B"]
    assert recommender.failure() == ServingFailure(
        CURRENT, FallbackReason.NON_FINITE_SCORES, AnswerSource.PREVIOUS_MODEL
    )


@pytest.mark.parametrize("value", [math.inf, -math.inf, math.nan])
def test_any_non_finite_item_score_counts_as_a_failure(value: float) -> None:
    scores = [*ascending_scores()]
    scores[5] = value
    holder = two_versions(
        serving_model(scores, version=CURRENT),
        serving_model(ascending_scores(), version=PREVIOUS),
    )
    recommender = recommender_over(holder, [(SHOPPER, "85123A")])

    assert recommender.recommend(SHOPPER, 2).model_version == PREVIOUS


def test_without_a_previous_version_non_finite_scores_fall_back_to_popularity() -> None:
    model = serving_model(NAN_SCORES, version=CURRENT, popular_items=(4, 5))
    recommender = recommender_over(two_versions(model, None), [(SHOPPER, "85123A")])

    answer = recommender.recommend(SHOPPER, 3)

    assert answer.source is AnswerSource.POPULARITY
    assert answer.fallback_reason is FallbackReason.NON_FINITE_SCORES
    assert answer.model_version == POPULARITY_VERSION
    # The shopper's own purchase is the one live best seller.
    assert [item.item_id for item in answer.items] == ["85123A", "84029G", "84029E"]
    assert recommender.failure() == ServingFailure(
        CURRENT, FallbackReason.NON_FINITE_SCORES, AnswerSource.POPULARITY
    )


def test_when_both_versions_score_non_finite_popularity_answers() -> None:
    holder = two_versions(
        serving_model(NAN_SCORES, version=CURRENT),
        serving_model(NAN_SCORES, version=PREVIOUS),
    )
    recommender = recommender_over(holder, [(SHOPPER, "85123A")])

    answer = recommender.recommend(SHOPPER, 2)

    assert answer.source is AnswerSource.POPULARITY
    assert answer.fallback_reason is FallbackReason.NON_FINITE_SCORES


def test_a_previous_version_that_does_not_know_the_shopper_leaves_popularity() -> None:
    holder = two_versions(
        serving_model(NAN_SCORES, version=CURRENT),
        serving_model(
            [0.0, 1.0, 2.0], version=PREVIOUS, item_ids=("", "22752", "21730")
        ),
    )
    recommender = recommender_over(holder, [(SHOPPER, "85123A")])

    assert recommender.recommend(SHOPPER, 2).source is AnswerSource.POPULARITY


def test_a_model_that_raises_falls_back_with_its_own_reason() -> None:
    holder = two_versions(
        serving_model([], version=CURRENT, scorer=ScoreFunction(failing)),
        serving_model(ascending_scores(), version=PREVIOUS),
    )
    recommender = recommender_over(holder, [(SHOPPER, "85123A")])

    answer = recommender.recommend(SHOPPER, 2)

    assert answer.model_version == PREVIOUS
    assert answer.fallback_reason is FallbackReason.SCORING_ERROR


def test_scores_of_the_wrong_shape_are_a_scoring_error() -> None:
    def too_narrow(item_seq: torch.Tensor) -> torch.Tensor:
        return torch.ones((item_seq.shape[0], 3))

    holder = two_versions(
        serving_model([], version=CURRENT, scorer=ScoreFunction(too_narrow)),
        serving_model(ascending_scores(), version=PREVIOUS),
    )
    recommender = recommender_over(holder, [(SHOPPER, "85123A")])

    answer = recommender.recommend(SHOPPER, 2)

    assert answer.fallback_reason is FallbackReason.SCORING_ERROR
    assert answer.model_version == PREVIOUS


def test_only_the_requests_with_non_finite_rows_fall_back_in_a_batch() -> None:
    scorer = nan_for_shoppers_who_last_bought(ITEM_IDS.index("71053"))
    holder = two_versions(
        serving_model([], version=CURRENT, scorer=scorer),
        serving_model(ascending_scores(), version=PREVIOUS),
    )
    recommender = recommender_over(
        holder, [("12583", "85123A"), (SHOPPER, "71053"), ("13047", "84406B")]
    )
    queries = [
        ShopperQuery(request_id=f"r-{user}", user_id=user, k=2)
        for user in ("12583", SHOPPER, "13047")
    ]

    answers = recommender.recommend_batch(queries)

    versions = {
        request_id: answer.model_version
        for request_id, answer in answers.items()
        if isinstance(answer, Recommendation)
    }
    assert versions == {
        "r-12583": CURRENT,
        f"r-{SHOPPER}": PREVIOUS,
        "r-13047": CURRENT,
    }


def test_a_failure_is_forgotten_once_the_model_scores_again_or_is_replaced() -> None:
    scorer = nan_for_shoppers_who_last_bought(ITEM_IDS.index("71053"))
    holder = two_versions(
        serving_model([], version=CURRENT, scorer=scorer),
        serving_model(ascending_scores(), version=PREVIOUS),
    )
    recommender = recommender_over(holder, [(SHOPPER, "71053"), ("12583", "85123A")])

    recommender.recommend(SHOPPER, 2)
    assert recommender.failure() is not None
    recommender.recommend("12583", 2)
    assert recommender.failure() is None

    recommender.recommend(SHOPPER, 2)
    holder.swap(serving_model(ascending_scores(), version="20261205T190102Z-dddd"))
    assert recommender.failure() is None
