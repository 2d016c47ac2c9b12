"""Where the search ranker reads and writes, and how it is built.

The trainer's own settings (state directory, threads, log level) come from
:class:`trainer.settings.TrainerSettings`; beside them, ``RECOPS_DATA_DIR``
names the shared data (default ``../shared/data`` next to the repository)
and ``RECOPS_CACHE_DIR`` the cache that keeps computed embeddings (default
``~/.cache/recops``). :class:`SearchConfig` is stored in every index manifest.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from pathlib import Path

from trainer.search.rankers import Feedback
from trainer.settings import REPO, TrainerSettings

DATA_DIR = REPO.parent / "shared" / "data"


@dataclasses.dataclass(frozen=True, kw_only=True)
class SearchConfig:
    """How products are embedded and rankers fitted and scored.

    ``repeats`` is how many more seeded splits the benchmark also fits and
    scores, to show how much one split's figures vary.

    ``dense_weight`` is the hybrid's share of the dense score; None fits it
    on the ESCI train queries, which an index of the shop's catalogue cannot
    do, so there it falls back to :data:`DEFAULT_DENSE_WEIGHT`. The shop's
    index likewise takes the feedback fitted on ESCI,
    :data:`DEFAULT_FEEDBACK`.
    """

    max_tokens: int = 128
    batch_size: int = 64
    cutoff: int = 10
    test_share: float = 0.5
    seed: int = 42
    repeats: int = 20
    dense_weight: float | None = None

    def __post_init__(self) -> None:
        if self.max_tokens < 8 or self.batch_size < 1:
            raise ValueError("max_tokens must be at least 8, batch_size positive")
        if self.cutoff < 1:
            raise ValueError("cutoff must be at least 1")
        if self.repeats < 0:
            raise ValueError("repeats must not be negative")
        if not 0.0 < self.test_share < 1.0:
            raise ValueError("test_share must be between 0 and 1")
        if self.dense_weight is not None and not 0.0 <= self.dense_weight <= 1.0:
            raise ValueError("dense_weight must be in [0, 1]")

    def as_dict(self) -> dict[str, int | float]:
        """The fields as a JSON-ready mapping; an unset weight is left out."""
        return {
            name: value
            for name, value in dataclasses.asdict(self).items()
            if value is not None
        }


# As fitted by ``python -m trainer.search evaluate`` on the 60 ESCI train queries.
DEFAULT_DENSE_WEIGHT = 0.5
DEFAULT_FEEDBACK = Feedback(products=5, weight=4.0)


@dataclasses.dataclass(frozen=True, kw_only=True)
class SearchSettings:
    """The trainer's settings plus the search ranker's data and cache."""

    trainer: TrainerSettings
    data_dir: Path
    cache_dir: Path | None
    config: SearchConfig = dataclasses.field(default_factory=SearchConfig)

    @property
    def esci_dir(self) -> Path:
        return self.data_dir / "esci"

    @property
    def embeddings_cache_dir(self) -> Path | None:
        """Where embeddings are kept between runs; None keeps none."""
        return None if self.cache_dir is None else self.cache_dir / "search-embeddings"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> SearchSettings:
        env = os.environ if env is None else env
        default_cache = Path.home() / ".cache" / "recops"
        return cls(
            trainer=TrainerSettings.from_env(env),
            data_dir=Path(env.get("RECOPS_DATA_DIR", str(DATA_DIR))),
            cache_dir=Path(env.get("RECOPS_CACHE_DIR", str(default_cache))),
        )
