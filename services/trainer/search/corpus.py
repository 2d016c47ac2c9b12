"""The texts a search ranker reads: ESCI products and the shop's catalogue.

A :class:`ProductCorpus` is two parallel lists, product ids and the one text
per product that both rankers index. For ESCI that text is the title, brand
and colour, then the bullet points and description (the encoder reads only
its first tokens, so the title matters most); for the shop it is the stock
code's latest description.

The ESCI relevance judgments (``query,product_id,esci_label``) are read as
:class:`Judgments`: for each query, the judged products and their labels.
"""

from __future__ import annotations

import collections
import csv
import dataclasses
import gzip
import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from trainer.errors import CorpusError
from trainer.sequences import ItemCatalogue
from trainer.snapshot import PurchaseLog

ESCI_GAINS: Mapping[str, float] = {"E": 1.0, "S": 0.1, "C": 0.01, "I": 0.0}
PRODUCTS_FILE = "products.jsonl.gz"
JUDGMENTS_FILE = "judgments.csv"
_TEXT_FIELDS = ("title", "brand", "color", "bullet_points", "description")
_TEXT_CHARS = 2000


@dataclasses.dataclass(frozen=True)
class ProductCorpus:
    """Products to search, one text each, in a fixed order."""

    product_ids: list[str]
    texts: list[str]

    def __post_init__(self) -> None:
        if len(self.product_ids) != len(self.texts):
            raise ValueError("product ids and texts differ in number")
        if len(set(self.product_ids)) != len(self.product_ids):
            raise ValueError("a product id appears twice in the corpus")

    def __len__(self) -> int:
        return len(self.product_ids)


@dataclasses.dataclass(frozen=True)
class Judgments:
    """Graded relevance labels, query by query, as in ESCI."""

    labels: dict[str, dict[str, str]]

    @property
    def queries(self) -> list[str]:
        """Every judged query, sorted."""
        return sorted(self.labels)

    def gains(self, query: str) -> dict[str, float]:
        """The ESCI gain of each product judged for ``query``."""
        return {pid: ESCI_GAINS[label] for pid, label in self.labels[query].items()}

    def subset(self, queries: Sequence[str]) -> Judgments:
        """The judgments of ``queries`` only."""
        return Judgments({query: self.labels[query] for query in queries})

    def __len__(self) -> int:
        return sum(len(products) for products in self.labels.values())


def esci_product_text(product: Mapping[str, object]) -> str:
    """The text indexed for one ESCI product, at most about 2,000 characters."""
    parts: list[str] = []
    for field in _TEXT_FIELDS:
        value = product.get(field)
        if isinstance(value, list):
            value = " ".join(str(v) for v in value)
        if value:
            parts.append(" ".join(str(value).split()))
    return " ".join(parts)[:_TEXT_CHARS]


def load_esci_products(esci_dir: Path) -> ProductCorpus:
    """Every product of ``products.jsonl.gz``, in file order."""
    path = esci_dir / PRODUCTS_FILE
    product_ids: list[str] = []
    texts: list[str] = []
    try:
        with gzip.open(path, "rt", encoding="utf-8") as lines:
            for line in lines:
                product = json.loads(line)
                product_ids.append(str(product["asin"]))
                texts.append(esci_product_text(product))
    except (OSError, ValueError, KeyError) as exc:
        raise CorpusError(f"cannot read ESCI products {path}: {exc}") from exc
    if not product_ids:
        raise CorpusError(f"no products in {path}")
    return ProductCorpus(product_ids, texts)


def load_esci_judgments(esci_dir: Path) -> Judgments:
    """The ESCI labels of ``judgments.csv``; unknown labels are refused."""
    path = esci_dir / JUDGMENTS_FILE
    labels: dict[str, dict[str, str]] = collections.defaultdict(dict)
    try:
        with open(path, newline="", encoding="utf-8") as file:
            for row in csv.DictReader(file):
                label = row["esci_label"]
                if label not in ESCI_GAINS:
                    raise CorpusError(f"unknown ESCI label {label!r} in {path}")
                labels[row["query"]][row["product_id"]] = label
    except (OSError, KeyError, csv.Error) as exc:
        raise CorpusError(f"cannot read ESCI judgments {path}: {exc}") from exc
    if not labels:
        raise CorpusError(f"no judged query in {path}")
    return Judgments(dict(labels))


def catalogue_corpus(catalogue: ItemCatalogue) -> ProductCorpus:
    """The products of a recommender's catalogue that have a description."""
    return _described(zip(catalogue.item_ids, catalogue.item_descriptions, strict=True))


def purchased_products_corpus(logs: Iterable[PurchaseLog]) -> ProductCorpus:
    """Every product bought in ``logs``, with its latest non-blank description."""
    descriptions: dict[str, str] = {}
    for log in logs:
        pairs = zip(log.item_ids, log.item_descriptions, strict=True)
        descriptions.update((item, text) for item, text in pairs if text.strip())
    return _described(sorted(descriptions.items()))


def _described(pairs: Iterable[tuple[str, str]]) -> ProductCorpus:
    """A corpus of the pairs with an id and a description, blanks collapsed."""
    kept = [
        (item_id, " ".join(text.split()))
        for item_id, text in pairs
        if item_id and text.strip()
    ]
    if not kept:
        raise CorpusError("no product has a description")
    return ProductCorpus([p for p, _ in kept], [t for _, t in kept])
