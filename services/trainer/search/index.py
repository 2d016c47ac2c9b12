"""Search index versions in the registry: how they are written, and read back.

Layout, one directory per version, renamed into place whole by
:func:`trainer.artifact.staged_version`::

    <state>/registry/product-search/<version>/
        products.json   {"format": 1, "product_ids": [N], "texts": [N]}
        embeddings.npy  float32 [N, dimensions], each row of length 1
        manifest.json   digests, sizes, metrics, config, encoder

``manifest.json`` is the registry's own, :class:`trainer.artifact.ModelManifest`,
so listing, verifying, backing up and restoring treat search indexes like
any model: ``model_file`` is ``embeddings.npy``, ``files`` lists both
files with their sha256 and size, ``snapshot_id`` names the source (a
snapshot id, or ``esci``), ``item_count`` is N, ``max_len`` the encoder's
token limit, ``config`` the :class:`~trainer.search.settings.SearchConfig`
used, and ``training`` holds ``encoder``, ``dimensions``,
``dense_weight`` and the pseudo-relevance feedback, ``feedback_products``
and ``feedback_weight`` (0 products: none; an index written before
feedback has neither and ranks once).

BM25 is rebuilt from the texts on load; queries are embedded by the same
encoder, so a loaded :class:`SearchIndex` answers
``search(query, k) -> [(product_id, score), ...]``, best first, scored by
the hybrid of :mod:`trainer.search.rankers` with the stored dense weight
and feedback.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from trainer.artifact import (
    MANIFEST_FILE,
    ModelManifest,
    StoredModel,
    list_versions,
    new_version,
    staged_version,
    version_files,
    version_problems,
)
from trainer.errors import ArtifactError, ArtifactIntegrityError
from trainer.search.corpus import ProductCorpus
from trainer.search.encoder import (
    Embeddings,
    Encoder,
    TextEncoder,
    cached_embeddings,
)
from trainer.search.rankers import Bm25Ranker, DenseRanker, Feedback, HybridRanker

logger = logging.getLogger(__name__)

FORMAT = 1
SEARCH_MODEL_NAME = "product-search"
PRODUCTS_FILE = "products.json"
EMBEDDINGS_FILE = "embeddings.npy"
_UNIT_TOLERANCE = 1e-3


class SearchIndex:
    """A catalogue's products, ready to answer text queries."""

    def __init__(
        self,
        corpus: ProductCorpus,
        embeddings: Embeddings,
        encoder: Encoder,
        *,
        dense_weight: float,
        feedback: Feedback | None = None,
        manifest: ModelManifest | None = None,
    ) -> None:
        self.corpus = corpus
        self.manifest = manifest
        self.ranker = HybridRanker(
            DenseRanker(encoder, embeddings),
            Bm25Ranker(corpus.texts),
            weight=dense_weight,
            feedback=feedback,
        )

    def search(self, query: str, k: int) -> list[tuple[str, float]]:
        """The ``k`` best products for ``query`` and their scores, best first."""
        if k < 1:
            raise ValueError("k must be at least 1")
        if not query.strip() or not len(self.corpus):
            return []
        scores = self.ranker.score_queries([query])[0]
        count = min(k, len(self.corpus))
        top = np.argpartition(-scores, count - 1)[:count]
        top = top[np.lexsort((top, -scores[top]))]
        return [(self.corpus.product_ids[n], float(scores[n])) for n in top]


def write_search_index(
    registry_dir: Path,
    corpus: ProductCorpus,
    embeddings: Embeddings,
    *,
    source: str,
    encoder: str,
    dense_weight: float,
    feedback: Feedback | None = None,
    metrics: Mapping[str, float],
    config: Mapping[str, int | float],
    created_at: datetime | None = None,
    version: str | None = None,
) -> StoredModel:
    """Store the index as a new ``product-search`` version, all or nothing."""
    created_at = datetime.now(UTC) if created_at is None else created_at
    version = new_version(created_at) if version is None else version
    _check_embeddings(embeddings, len(corpus), embeddings.shape[-1])
    try:
        with staged_version(registry_dir, SEARCH_MODEL_NAME, version) as staging:
            products = {"format": FORMAT, **dataclasses.asdict(corpus)}
            (staging / PRODUCTS_FILE).write_text(json.dumps(products))
            with open(staging / EMBEDDINGS_FILE, "wb") as file:
                np.save(file, embeddings, allow_pickle=False)
            files = version_files(staging)
            manifest = ModelManifest(
                model_name=SEARCH_MODEL_NAME,
                version=version,
                created_at=created_at.astimezone(UTC).isoformat(),
                snapshot_id=source,
                sha256=files[EMBEDDINGS_FILE].sha256,
                size_bytes=files[EMBEDDINGS_FILE].size_bytes,
                item_count=len(corpus),
                max_len=int(config.get("max_tokens", 0)),
                metrics=dict(metrics),
                config=dict(config),
                training={
                    "encoder": encoder,
                    "dimensions": int(embeddings.shape[1]),
                    "dense_weight": dense_weight,
                    "feedback_products": 0 if feedback is None else feedback.products,
                    "feedback_weight": 0.0 if feedback is None else feedback.weight,
                },
                model_file=EMBEDDINGS_FILE,
                files=files,
            )
            (staging / MANIFEST_FILE).write_text(manifest.to_json())
    except OSError as exc:
        raise ArtifactError(f"cannot write search index: {exc}") from exc

    logger.info(
        "stored search index %s",
        version,
        extra={"model_version": version, "items": len(corpus), "source": source},
    )
    return StoredModel(registry_dir / SEARCH_MODEL_NAME / version, manifest)


def index_corpus(
    registry_dir: Path,
    corpus: ProductCorpus,
    encoder: Encoder,
    *,
    source: str,
    dense_weight: float,
    feedback: Feedback | None = None,
    metrics: Mapping[str, float],
    config: Mapping[str, int | float],
    cache_dir: Path | None = None,
) -> StoredModel:
    """Embed a corpus of (product id, text) and store it as a new version."""
    if not corpus:
        raise ArtifactError("an index needs at least one product")
    embeddings = cached_embeddings(encoder, corpus.texts, cache_dir)
    return write_search_index(
        registry_dir,
        corpus,
        embeddings,
        source=source,
        encoder=encoder.name,
        dense_weight=dense_weight,
        feedback=feedback,
        metrics=metrics,
        config=config,
    )


def latest_search_index(registry_dir: Path) -> Path:
    """The newest complete ``product-search`` version directory."""
    versions = list_versions(registry_dir, SEARCH_MODEL_NAME)
    if not versions:
        raise ArtifactError(f"no {SEARCH_MODEL_NAME} version in {registry_dir}")
    return versions[-1]


def load_search_index(directory: Path, encoder: Encoder | None = None) -> SearchIndex:
    """Load a version directory, checking every file against its manifest.

    ``encoder`` defaults to the packaged MiniLM. Raises
    :class:`ArtifactIntegrityError` when a file's digest, size or shape is
    not what the manifest says, or the encoder is not the one it names.
    """
    try:
        manifest = ModelManifest.from_json((directory / MANIFEST_FILE).read_text())
    except OSError as exc:
        raise ArtifactError(f"no readable manifest in {directory}") from exc
    if set(manifest.files) != {PRODUCTS_FILE, EMBEDDINGS_FILE}:
        raise ArtifactIntegrityError(f"the manifest lists {sorted(manifest.files)}")
    if problems := version_problems(directory, manifest):
        raise ArtifactIntegrityError(f"{directory}: {'; '.join(problems)}")
    corpus = _read_products(directory / PRODUCTS_FILE)
    if len(corpus) != manifest.item_count:
        raise ArtifactIntegrityError("the product count disagrees with the manifest")
    built_by = str(manifest.training.get("encoder"))
    dimensions = int(manifest.training.get("dimensions", -1))
    embeddings = _read_embeddings(directory / EMBEDDINGS_FILE)
    _check_embeddings(embeddings, manifest.item_count, dimensions)

    encoder = TextEncoder() if encoder is None else encoder
    if encoder.name != built_by or encoder.dimensions != dimensions:
        raise ArtifactIntegrityError(
            f"the index was built by {built_by}, not {encoder.name}"
        )
    return SearchIndex(
        corpus,
        embeddings,
        encoder,
        dense_weight=float(manifest.training["dense_weight"]),
        feedback=_stored_feedback(manifest),
        manifest=manifest,
    )


def _stored_feedback(manifest: ModelManifest) -> Feedback | None:
    """The feedback the manifest names; None when it names none."""
    products = int(manifest.training.get("feedback_products", 0))
    if products < 1:
        return None
    try:
        return Feedback(
            products=products, weight=float(manifest.training["feedback_weight"])
        )
    except (KeyError, ValueError) as exc:
        raise ArtifactIntegrityError(f"unusable feedback: {exc}") from exc


def _read_products(path: Path) -> ProductCorpus:
    try:
        fields = json.loads(path.read_text())
        if fields.pop("format") != FORMAT:
            raise ArtifactIntegrityError(f"unknown {PRODUCTS_FILE} format")
        return ProductCorpus(list(fields["product_ids"]), list(fields["texts"]))
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise ArtifactIntegrityError(f"unreadable {path}: {exc}") from exc


def _read_embeddings(path: Path) -> Embeddings:
    try:
        embeddings: Embeddings = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise ArtifactIntegrityError(f"unreadable {path}: {exc}") from exc
    return embeddings


def _check_embeddings(embeddings: Embeddings, rows: int, dimensions: int) -> None:
    """Float32 ``[rows, dimensions]``, every row finite and of length 1."""
    if embeddings.dtype != np.float32 or embeddings.shape != (rows, dimensions):
        raise ArtifactIntegrityError(
            f"embeddings are {embeddings.dtype} {embeddings.shape}, "
            f"not float32 ({rows}, {dimensions})"
        )
    norms = np.linalg.norm(embeddings, axis=1)
    if not np.all(np.isfinite(norms)) or np.any(np.abs(norms - 1.0) > _UNIT_TOLERANCE):
        raise ArtifactIntegrityError("embeddings are not all finite unit vectors")
