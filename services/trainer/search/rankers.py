"""Rankers that score every product of a corpus for a text query.

- :class:`Bm25Ranker`: Okapi BM25 (``rank_bm25``) over :func:`tokenize`'s
  words: exact word matches, weighted by rarity, damped by text length.
- :class:`DenseRanker`: cosine similarity of MiniLM embeddings, so a query
  finds products described in other words.
- :class:`HybridRanker`: ``weight * r(dense) + (1 - weight) * r(bm25)``,
  where ``r`` rescales one query's scores over the whole corpus to run from
  0 (its worst product) to 1 (its best), so the two scales can be added.
  With :class:`Feedback` it ranks twice: the dense query moves towards the
  products the first ranking put on top (Rocchio's pseudo-relevance
  feedback), and the moved query is fused again with BM25.

Each returns a matrix of scores ``[queries, products]``, higher is better.
Both base rankers match a query's :func:`wanted_text`: shoppers write
"water bottle without straw", and matching "straw" would favour exactly the
products they exclude; neither BM25 nor MiniLM reads the negation.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt
from rank_bm25 import BM25Okapi

from trainer.search.encoder import Embeddings, Encoder

Scores = npt.NDArray[np.float64]
_WORD = re.compile(r"[a-z0-9]+")
# "without" and the one or two words it excludes, never crossing a "with".
_EXCLUSION = re.compile(r"\bwithout(?:\s+(?!with\b)\S+){1,2}", re.IGNORECASE)


def wanted_text(query: str) -> str:
    """The query less its ``without ...`` exclusions, or the query if that is all.

    An exclusion is ``without`` and the next one or two words, stopping at
    ``with``: ``lights without wiring with switch`` wants ``lights with
    switch``.
    """
    wanted = " ".join(_EXCLUSION.sub(" ", query).split())
    return wanted or query


def tokenize(text: str) -> list[str]:
    """Lower-cased runs of letters and digits; everything else separates.

    A trailing ``s`` is dropped from words longer than three letters, a crude
    plural folding: ``towels`` matches ``towel``, ``glass`` matches ``glas``
    on both sides alike.
    """
    return [_fold_plural(word) for word in _WORD.findall(text.lower())]


def _fold_plural(word: str) -> str:
    return word[:-1] if len(word) > 3 and word.endswith("s") else word


class Ranker(Protocol):
    """Anything that scores every product of its corpus for each query."""

    def score_queries(self, queries: Sequence[str]) -> Scores:
        """Scores ``[len(queries), products]``, higher is better."""
        ...


@runtime_checkable
class FeedbackRanker(Ranker, Protocol):
    """A ranker that can also score queries moved by pseudo-relevance feedback."""

    def score_with_feedback(
        self, queries: Sequence[str], first: Scores, feedback: Feedback
    ) -> Scores:
        """Scores of the queries moved towards ``first``'s best products."""
        ...


class Bm25Ranker:
    """Okapi BM25 over the tokenized product texts.

    ``exclusions`` False matches the whole query, the textbook baseline.
    """

    def __init__(
        self,
        texts: Sequence[str],
        *,
        k1: float = 1.2,
        b: float = 0.75,
        exclusions: bool = True,
    ) -> None:
        self.exclusions = exclusions
        documents = [tokenize(text) for text in texts]
        # rank_bm25 divides by the mean length; an all-empty corpus has none.
        self.product_count = len(documents)
        self.bm25 = BM25Okapi(documents, k1=k1, b=b) if any(documents) else None

    def score_queries(self, queries: Sequence[str]) -> Scores:
        scores = np.zeros((len(queries), self.product_count), dtype=np.float64)
        if self.bm25 is None:
            return scores
        for row, query in enumerate(queries):
            text = wanted_text(query) if self.exclusions else query
            scores[row] = self.bm25.get_scores(tokenize(text))
        return scores


@dataclasses.dataclass(frozen=True, kw_only=True)
class Feedback:
    """How far a dense query moves towards the products first ranked best.

    The moved query is ``q + weight * mean(top products' embeddings)``,
    back to unit length, over the first ``products`` of the first ranking.
    """

    products: int
    weight: float

    def __post_init__(self) -> None:
        if self.products < 1 or self.weight <= 0.0:
            raise ValueError("feedback needs at least one product and a weight > 0")


class DenseRanker:
    """Cosine similarity between query and product embeddings."""

    def __init__(self, encoder: Encoder, embeddings: Embeddings) -> None:
        self.encoder = encoder
        self.embeddings = embeddings

    def query_vectors(self, queries: Sequence[str]) -> Embeddings:
        """Each query's wanted text, embedded."""
        return self.encoder.encode([wanted_text(query) for query in queries])

    def score_queries(self, queries: Sequence[str]) -> Scores:
        return (self.query_vectors(queries) @ self.embeddings.T).astype(np.float64)

    def score_with_feedback(
        self, queries: Sequence[str], first: Scores, feedback: Feedback
    ) -> Scores:
        """Scores of the queries moved towards ``first``'s best products."""
        count = min(feedback.products, self.embeddings.shape[0])
        top = np.argpartition(-first, count - 1, axis=1)[:, :count]
        centroids = self.embeddings[top].mean(axis=1)
        moved = self.query_vectors(queries) + feedback.weight * centroids
        norms = np.linalg.norm(moved, axis=1, keepdims=True)
        moved = np.divide(moved, norms, out=np.zeros_like(moved), where=norms > 0)
        scores: Scores = (moved @ self.embeddings.T).astype(np.float64)
        return scores


class HybridRanker:
    """A weighted sum of two rankers' rescaled scores, maybe ranked twice.

    ``feedback`` needs a ``dense`` ranker that can score with feedback, as
    :class:`DenseRanker` does.
    """

    def __init__(
        self,
        dense: Ranker,
        lexical: Ranker,
        *,
        weight: float,
        feedback: Feedback | None = None,
    ) -> None:
        if not 0.0 <= weight <= 1.0:
            raise ValueError("the dense weight must be in [0, 1]")
        if feedback is not None and not isinstance(dense, FeedbackRanker):
            raise TypeError("feedback needs a dense ranker that scores with it")
        self.dense = dense
        self.lexical = lexical
        self.weight = weight
        self.feedback = feedback

    def score_queries(self, queries: Sequence[str]) -> Scores:
        lexical = self.lexical.score_queries(queries)
        fused = fuse(self.dense.score_queries(queries), lexical, self.weight)
        if self.feedback is None or not isinstance(self.dense, FeedbackRanker):
            return fused
        moved = self.dense.score_with_feedback(queries, fused, self.feedback)
        return fuse(moved, lexical, self.weight)


def rescale(scores: Scores) -> Scores:
    """Each row mapped onto [0, 1], its least score to 0 and its best to 1.

    A constant row becomes all 0.
    """
    least = scores.min(axis=1, keepdims=True)
    spread = scores.max(axis=1, keepdims=True) - least
    rescaled: Scores = np.divide(
        scores - least, spread, out=np.zeros_like(scores), where=spread > 0
    )
    return rescaled


def fuse(dense: Scores, lexical: Scores, weight: float) -> Scores:
    """``weight * r(dense) + (1 - weight) * r(lexical)``, row by row."""
    fused: Scores = weight * rescale(dense) + (1.0 - weight) * rescale(lexical)
    return fused


class PrecomputedRanker:
    """Scores computed once for known queries, served back by query text."""

    def __init__(self, queries: Sequence[str], scores: Scores) -> None:
        self.rows = {query: row for row, query in enumerate(queries)}
        self.scores = scores

    @classmethod
    def of(cls, ranker: Ranker, queries: Sequence[str]) -> PrecomputedRanker:
        """Ask ``ranker`` once for every query in ``queries``."""
        return cls(queries, ranker.score_queries(queries))

    def score_queries(self, queries: Sequence[str]) -> Scores:
        return self.scores[[self.rows[query] for query in queries]]
