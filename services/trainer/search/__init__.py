"""Product search: BM25, MiniLM dense retrieval and their hybrid.

``python -m trainer.search evaluate`` measures the rankers on the ESCI
judgments; ``python -m trainer.search index`` stores a search index of the
shop's catalogue (or of ESCI) as a ``product-search`` version in the
registry. :mod:`trainer.search.index` documents the stored format; a server
loads the newest version and answers queries with::

    index = load_search_index(latest_search_index(registry_dir))
    index.search("red heart lantern", k=10)  # [(product_id, score), ...]
"""

from trainer.search.corpus import (
    ESCI_GAINS,
    Judgments,
    ProductCorpus,
    catalogue_corpus,
    load_esci_judgments,
    load_esci_products,
)
from trainer.search.encoder import ENCODER_NAME, TextEncoder
from trainer.search.index import (
    SEARCH_MODEL_NAME,
    SearchIndex,
    index_corpus,
    latest_search_index,
    load_search_index,
    write_search_index,
)
from trainer.search.rankers import Bm25Ranker, DenseRanker, HybridRanker, tokenize
from trainer.search.relevance import Evaluation, SearchQuality, ndcg, split_queries
from trainer.search.settings import SearchConfig, SearchSettings

__all__ = [
    "ENCODER_NAME",
    "ESCI_GAINS",
    "SEARCH_MODEL_NAME",
    "Bm25Ranker",
    "DenseRanker",
    "Evaluation",
    "HybridRanker",
    "Judgments",
    "ProductCorpus",
    "SearchConfig",
    "SearchIndex",
    "SearchQuality",
    "SearchSettings",
    "TextEncoder",
    "catalogue_corpus",
    "index_corpus",
    "latest_search_index",
    "load_esci_judgments",
    "load_esci_products",
    "load_search_index",
    "ndcg",
    "split_queries",
    "tokenize",
    "write_search_index",
]
