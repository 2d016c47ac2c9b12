"""The ESCI benchmark: BM25, dense and hybrid rankers on the same queries.

Steps: read the products and judgments; build BM25 and embed every product
(cached); split the queries into train and test; fit the hybrid's dense
weight and pseudo-relevance feedback on the train queries; score every
ranker on the test queries, and the unfitted ones on all queries too.
``bm25-plain`` matches whole queries, ``bm25`` drops their ``without ...``
exclusions as the dense ranker does. The goals of the search ranker are
judged on the test queries: retrieval nDCG@10 at least 10% above the better
BM25's, and the hybrid's re-ranking nDCG at least 0.85.
"""

from __future__ import annotations

import dataclasses
import logging
import statistics
import time
from collections.abc import Mapping

from trainer.search.corpus import (
    ProductCorpus,
    load_esci_judgments,
    load_esci_products,
)
from trainer.search.encoder import (
    Embeddings,
    Encoder,
    KnownTextsEncoder,
    TextEncoder,
    cached_embeddings,
)
from trainer.search.rankers import (
    Bm25Ranker,
    DenseRanker,
    Feedback,
    HybridRanker,
    PrecomputedRanker,
    Ranker,
    wanted_text,
)
from trainer.search.relevance import (
    Evaluation,
    HybridGrid,
    SearchQuality,
    split_queries,
)
from trainer.search.settings import SearchSettings

logger = logging.getLogger(__name__)

RETRIEVAL_GAIN_GOAL = 0.10
RERANK_NDCG_GOAL = 0.85


@dataclasses.dataclass(frozen=True)
class EsciReport:
    """What one ESCI benchmark run measured."""

    corpus: ProductCorpus
    embeddings: Embeddings
    encoder: str
    train_queries: list[str]
    test_queries: list[str]
    dense_weight: float
    feedback: Feedback | None
    test: dict[str, SearchQuality]
    all_queries: dict[str, SearchQuality]
    repeated: dict[str, float]
    seconds: dict[str, float]

    @property
    def retrieval_gain(self) -> float:
        """The hybrid's test nDCG@k over the better BM25's, less one."""
        bm25 = max(self.test["bm25"].ndcg, self.test["bm25-plain"].ndcg)
        return self.test["hybrid"].ndcg / bm25 - 1.0

    @property
    def rerank_ndcg(self) -> float:
        """The hybrid's re-ranking nDCG on the test queries."""
        return self.test["hybrid"].rerank_ndcg

    def goals(self) -> dict[str, bool]:
        """Whether each of the search ranker's goals is met."""
        return {
            "retrieval_10pct_above_bm25": self.retrieval_gain >= RETRIEVAL_GAIN_GOAL,
            "rerank_ndcg_0.85": self.rerank_ndcg >= RERANK_NDCG_GOAL,
        }

    def metrics(self) -> dict[str, float]:
        """The test figures, keyed like ``hybrid/ndcg@10``."""
        metrics: dict[str, float] = {}
        for name, quality in self.test.items():
            metrics.update(quality.as_metrics(f"{name}/"))
        return metrics

    def as_json(self) -> dict[str, object]:
        return {
            "encoder": self.encoder,
            "products": len(self.corpus),
            "train_queries": len(self.train_queries),
            "test_queries": len(self.test_queries),
            "dense_weight": self.dense_weight,
            "feedback": None
            if self.feedback is None
            else dataclasses.asdict(self.feedback),
            "test": {n: dataclasses.asdict(q) for n, q in self.test.items()},
            "all_queries": {
                n: dataclasses.asdict(q) for n, q in self.all_queries.items()
            },
            "retrieval_gain_over_bm25": self.retrieval_gain,
            "goals": self.goals(),
            "repeated_splits": self.repeated,
            "seconds": self.seconds,
        }


def run_esci_benchmark(
    settings: SearchSettings, encoder: Encoder | None = None
) -> EsciReport:
    """Fit on the train queries, then measure every ranker."""
    config = settings.config
    seconds: dict[str, float] = {}
    corpus = load_esci_products(settings.esci_dir)
    judgments = load_esci_judgments(settings.esci_dir)
    evaluation = Evaluation(corpus, judgments)
    train, test = split_queries(
        judgments.queries, test_share=config.test_share, seed=config.seed
    )

    started = time.monotonic()
    bm25 = PrecomputedRanker.of(Bm25Ranker(corpus.texts), judgments.queries)
    seconds["bm25"] = time.monotonic() - started
    plain = PrecomputedRanker.of(
        Bm25Ranker(corpus.texts, exclusions=False), judgments.queries
    )
    if encoder is None:
        encoder = TextEncoder(
            max_tokens=config.max_tokens, batch_size=config.batch_size
        )
    started = time.monotonic()
    embeddings = cached_embeddings(encoder, corpus.texts, settings.embeddings_cache_dir)
    seconds["encode_products"] = time.monotonic() - started
    started = time.monotonic()
    wanted = [wanted_text(query) for query in judgments.queries]
    dense = DenseRanker(KnownTextsEncoder(encoder, wanted), embeddings)
    seconds["encode_queries"] = time.monotonic() - started

    started = time.monotonic()
    grid = hybrid_grid(evaluation, dense, bm25, settings)
    fit = grid.best(train)
    seconds["fit_hybrid"] = time.monotonic() - started
    logger.info(
        "hybrid dense weight %.2f, feedback %s",
        fit.dense_weight,
        fit.feedback,
        extra={"dense_weight": fit.dense_weight},
    )
    unfitted: dict[str, Ranker] = {"bm25-plain": plain, "bm25": bm25, "dense": dense}
    hybrid = HybridRanker(dense, bm25, weight=fit.dense_weight, feedback=fit.feedback)
    repeated = repeated_splits(evaluation, unfitted, grid, settings)
    return EsciReport(
        corpus=corpus,
        embeddings=embeddings,
        encoder=encoder.name,
        train_queries=train,
        test_queries=test,
        dense_weight=fit.dense_weight,
        feedback=fit.feedback,
        test=_qualities(
            evaluation, {**unfitted, "hybrid": hybrid}, test, config.cutoff
        ),
        all_queries=_qualities(evaluation, unfitted, judgments.queries, config.cutoff),
        repeated=repeated,
        seconds=seconds,
    )


def _qualities(
    evaluation: Evaluation,
    rankers: Mapping[str, Ranker],
    queries: list[str],
    cutoff: int,
) -> dict[str, SearchQuality]:
    return {
        name: evaluation.quality(ranker, queries, cutoff)
        for name, ranker in rankers.items()
    }


def hybrid_grid(
    evaluation: Evaluation,
    dense: DenseRanker,
    bm25: Ranker,
    settings: SearchSettings,
) -> HybridGrid:
    """Every hybrid setting's nDCG on every query; a fixed weight is kept."""
    config = settings.config
    fixed = config.dense_weight
    return HybridGrid(
        evaluation,
        dense,
        bm25,
        evaluation.judgments.queries,
        cutoff=config.cutoff,
        weights=None if fixed is None else [fixed],
    )


def repeated_splits(
    evaluation: Evaluation,
    rankers: Mapping[str, Ranker],
    grid: HybridGrid,
    settings: SearchSettings,
) -> dict[str, float]:
    """The hybrid's test figures over many seeded splits: mean and spread.

    One split of 120 queries leaves few to test on; splits seeded ``seed``,
    ``seed + 1``, ... show how far its figures can be trusted. Each split
    fits the hybrid on its own train queries, from ``grid``. ``rankers``
    holds ``dense``, ``bm25`` and ``bm25-plain``.
    """
    config = settings.config
    dense, bm25 = rankers["dense"], rankers["bm25"]
    gains: list[float] = []
    reranking: list[float] = []
    for offset in range(config.repeats):
        train, test = split_queries(
            evaluation.judgments.queries,
            test_share=config.test_share,
            seed=config.seed + offset,
        )
        fit = grid.best(train)
        hybrid = HybridRanker(
            dense, bm25, weight=fit.dense_weight, feedback=fit.feedback
        )
        quality = evaluation.quality(hybrid, test, config.cutoff)
        baseline = max(
            evaluation.quality(rankers[name], test, config.cutoff).ndcg
            for name in ("bm25", "bm25-plain")
        )
        gains.append(quality.ndcg / baseline - 1.0)
        reranking.append(quality.rerank_ndcg)
    if not gains:
        return {"splits": 0}
    return {
        "splits": len(gains),
        "retrieval_gain_mean": statistics.fmean(gains),
        "retrieval_gain_sd": statistics.pstdev(gains),
        "rerank_ndcg_mean": statistics.fmean(reranking),
        "rerank_ndcg_min": min(reranking),
    }
