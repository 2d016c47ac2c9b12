"""Small generated corpora and stand-in rankers and encoders for search tests."""

from __future__ import annotations

import csv
import gzip
import hashlib
import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from trainer.search.encoder import Embeddings
from trainer.search.rankers import Feedback, Scores

# Words chosen so that each product has its own vocabulary.
SHOP_PRODUCTS = {
    "85123A": "WHITE HANGING HEART T-LIGHT HOLDER",
    "71053": "WHITE METAL LANTERN",
    "84406B": "CREAM CUPID HEARTS COAT HANGER",
    "22423": "REGENCY CAKESTAND 3 TIER",
    "47566": "PARTY BUNTING",
    "21212": "PACK OF 72 RETROSPOT CAKE CASES",
}


class FixedRanker:
    """Serves given score rows by query."""

    def __init__(self, rows: Mapping[str, np.ndarray]) -> None:
        self.rows = rows

    def score_queries(self, queries: Sequence[str]) -> Scores:
        return np.array([self.rows[query] for query in queries], dtype=np.float64)


class WordHashEncoder:
    """Embeds a text as the normalised sum of one random vector per word.

    Texts sharing words point the same way, which is all the search tests
    need from an encoder, in microseconds and without model files.
    """

    name = "word-hash"
    dimensions = 32

    def __init__(self) -> None:
        self.calls = 0

    def encode(self, texts: Sequence[str], *, progress: bool = False) -> Embeddings:
        self.calls += 1
        result = np.zeros((len(texts), self.dimensions), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in text.lower().split():
                seed = int.from_bytes(hashlib.sha256(word.encode()).digest()[:4])
                result[row] += np.random.default_rng(seed).normal(size=self.dimensions)
            norm = np.linalg.norm(result[row])
            result[row] = result[row] / norm if norm else _first_axis(self.dimensions)
        return result


def _first_axis(dimensions: int) -> np.ndarray:
    axis = np.zeros(dimensions, dtype=np.float32)
    axis[0] = 1.0
    return axis


def write_esci(
    directory: Path,
    products: Sequence[Mapping[str, object]],
    judgments: Sequence[tuple[str, str, str]],
) -> Path:
    """An ESCI-shaped directory: products.jsonl.gz and judgments.csv."""
    directory.mkdir(parents=True, exist_ok=True)
    with gzip.open(directory / "products.jsonl.gz", "wt", encoding="utf-8") as file:
        for product in products:
            file.write(json.dumps(product) + "\n")
    with open(directory / "judgments.csv", "w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file)
        writer.writerow(["query", "product_id", "esci_label"])
        writer.writerows(judgments)
    return directory


class FixedFeedbackRanker(FixedRanker):
    """Serves given score rows, and other given rows once moved by feedback."""

    def __init__(
        self, rows: Mapping[str, np.ndarray], moved: Mapping[str, np.ndarray]
    ) -> None:
        super().__init__(rows)
        self.moved = moved

    def score_with_feedback(
        self, queries: Sequence[str], first: Scores, feedback: Feedback
    ) -> Scores:
        return np.array([self.moved[query] for query in queries], dtype=np.float64)
