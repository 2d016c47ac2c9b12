"""Rankers that score every product of a corpus for a text query.

- :class:`Bm25Ranker`: Okapi BM25 (``rank_bm25``) over :func:`tokenize`'s
  words: exact word matches, weighted by rarity, damped by text length.
- :class:`DenseRanker`: cosine similarity of MiniLM embeddings, so a query
  finds products described in other words.
- :class:`HybridRanker`: ``weight * z(dense) + (1 - weight) * z(bm25)``,
  where ``z`` standardises one query's scores over the whole corpus (mean 0,
  standard deviation 1), so the two scales can be added.

Each returns a matrix of scores ``[queries, products]``, higher is better.
Both base rankers match a query's :func:`wanted_text`: shoppers write
"water bottle without straw", and matching "straw" would favour exactly the
products they exclude; neither BM25 nor MiniLM reads the negation.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Protocol

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


class DenseRanker:
    """Cosine similarity between query and product embeddings."""

    def __init__(self, encoder: Encoder, embeddings: Embeddings) -> None:
        self.encoder = encoder
        self.embeddings = embeddings

    def score_queries(self, queries: Sequence[str]) -> Scores:
        vectors = self.encoder.encode([wanted_text(query) for query in queries])
        return (vectors @ self.embeddings.T).astype(np.float64)


class HybridRanker:
    """A weighted sum of two rankers' per-query standardised scores."""

    def __init__(self, dense: Ranker, lexical: Ranker, *, weight: float) -> None:
        if not 0.0 <= weight <= 1.0:
            raise ValueError("the dense weight must be in [0, 1]")
        self.dense = dense
        self.lexical = lexical
        self.weight = weight

    def score_queries(self, queries: Sequence[str]) -> Scores:
        return fuse(
            self.dense.score_queries(queries),
            self.lexical.score_queries(queries),
            self.weight,
        )


def standardise(scores: Scores) -> Scores:
    """Each row shifted to mean 0 and scaled to deviation 1 (0 if constant)."""
    centred = scores - scores.mean(axis=1, keepdims=True)
    spread = scores.std(axis=1, keepdims=True)
    standard: Scores = np.divide(
        centred, spread, out=np.zeros_like(centred), where=spread > 0
    )
    return standard


def fuse(dense: Scores, lexical: Scores, weight: float) -> Scores:
    """``weight * z(dense) + (1 - weight) * z(lexical)``, row by row."""
    fused: Scores = weight * standardise(dense) + (1.0 - weight) * standardise(lexical)
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
