"""Follows the model announcements and puts the newest good version in service."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence

from eventbus import DecodeError, decode
from eventbus.contracts import ModelReady
from inference.errors import ArtifactRejectedError
from inference.feeds import Record, header_list
from inference.metrics import InferenceMetrics
from inference.model import ModelHolder, ServingModel

logger = logging.getLogger(__name__)

ModelLoader = Callable[[ModelReady], ServingModel]


class ModelFeed:
    """Loads announced model versions and swaps each good one in.

    Of the announcements read together, the newest is tried first; when it
    is refused, the next newest, down to the version already serving. A
    refused version is remembered and never tried again, unless it was
    refused only because its store could not be reached.
    """

    def __init__(
        self,
        *,
        holder: ModelHolder,
        loader: ModelLoader,
        metrics: InferenceMetrics,
        model_name: str,
    ) -> None:
        self._holder = holder
        self._loader = loader
        self._metrics = metrics
        self._model_name = model_name
        self._refused: set[tuple[str, str]] = set()

    def handle(self, records: Sequence[Record]) -> None:
        announcements = [ready for ready in map(self._decode, records) if ready]
        for ready in reversed(announcements):
            if self._is_serving(ready) or self._try_load(ready):
                return

    def _decode(self, record: Record) -> ModelReady | None:
        try:
            ready = decode(ModelReady, record.value(), header_list(record.headers()))
        except DecodeError as exc:
            logger.warning(
                "undecodable ModelReady: %s", exc, extra={"offset": record.offset()}
            )
            self._metrics.model_loads.labels("undecodable").inc()
            return None
        if ready.model_name != self._model_name:
            logger.info(
                "ignoring another model's announcement",
                extra={"model_name": ready.model_name, "model_version": ready.version},
            )
            return None
        return ready

    def _is_serving(self, ready: ModelReady) -> bool:
        current = self._holder.current
        return current is not None and current.version == ready.version

    def _try_load(self, ready: ModelReady) -> bool:
        if (ready.version, ready.sha256) in self._refused:
            return False
        context = {"model_version": ready.version, "artifact_uri": ready.artifact_uri}
        started = time.perf_counter()
        try:
            model = self._loader(ready)
        except ArtifactRejectedError as exc:
            if not exc.retriable:  # a store that was unreachable may answer later
                self._refused.add((ready.version, ready.sha256))
            self._metrics.model_loads.labels(exc.reason.value).inc()
            logger.warning("model version refused: %s", exc, extra=context)
            return False
        except Exception:  # a broken artifact must never take the service down
            self._refused.add((ready.version, ready.sha256))
            self._metrics.model_loads.labels("load_error").inc()
            logger.exception("model version failed to load", extra=context)
            return False

        previous = self._holder.swap(model)
        self._metrics.model_loads.labels("loaded").inc()
        self._metrics.serving_model.info(
            {
                "model_name": model.model_name,
                "version": model.version,
                "previous_version": previous.version if previous else "",
            }
        )
        logger.info(
            "model version in service",
            extra={
                **context,
                "replaced_version": previous.version if previous else "popularity",
                "load_seconds": round(time.perf_counter() - started, 3),
            },
        )
        return True
