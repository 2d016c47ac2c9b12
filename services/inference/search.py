"""Search over the shop's catalogue, answered from a loaded product index.

The index itself is built and stored by the trainer (``python -m trainer.search
index``). Inference sees it only through :class:`ProductSearch`, so the
service depends on what an index answers, not on how one is read.
"""

from __future__ import annotations

import asyncio
import dataclasses
from concurrent.futures import Executor
from typing import Protocol

from inference.errors import NoSearchIndexError

NO_SEARCH_INDEX = "no search index is loaded, so Search cannot answer"


class ProductSearch(Protocol):
    """Anything that ranks the catalogue's products for a text query."""

    def search(self, query: str, k: int) -> list[tuple[str, float]]:
        """The ``k`` best product ids for ``query`` and their scores, best first."""
        ...


@dataclasses.dataclass(frozen=True, kw_only=True)
class LoadedSearchIndex:
    """A product index in service, and the version it was stored as."""

    index: ProductSearch
    version: str


@dataclasses.dataclass(frozen=True, kw_only=True)
class SearchResult:
    """One Search answer: products best first, and the index that ranked them."""

    items: list[tuple[str, float]]
    version: str


class Searcher:
    """Answers Search queries on a worker thread, never on the event loop."""

    def __init__(self, loaded: LoadedSearchIndex | None, executor: Executor) -> None:
        self._loaded = loaded
        self._executor = executor

    @property
    def version(self) -> str | None:
        """The index version answering, or ``None`` while none is loaded."""
        return self._loaded.version if self._loaded is not None else None

    async def search(self, query: str, k: int) -> SearchResult:
        """The ``k`` best products for ``query``; refused while no index is loaded."""
        loaded = self._loaded
        if loaded is None:
            raise NoSearchIndexError(NO_SEARCH_INDEX)
        loop = asyncio.get_running_loop()
        items = await loop.run_in_executor(
            self._executor, loaded.index.search, query, k
        )
        return SearchResult(items=items, version=loaded.version)
