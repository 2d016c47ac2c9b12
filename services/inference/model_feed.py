"""Follows the model announcements and puts the newest good version in service.

A version that cannot be put in service is counted and reported once on the
alerts topic, with the reason it was refused.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from eventbus import DecodeError, decode
from eventbus.contracts import Alert, AlertSeverity, AlertState, ModelReady
from inference.errors import ArtifactRejectedError
from inference.feeds import Record, header_list
from inference.metrics import InferenceMetrics
from inference.model import ModelHolder, ServingModel
from inference.publish import RecordPublisher

logger = logging.getLogger(__name__)

ModelLoader = Callable[[ModelReady], ServingModel]

REFUSAL_RULE = "ModelVersionNotLoaded"
LOAD_ERROR = "load_error"


def refused_version_alert(
    ready: ModelReady, reason: str, detail: str, *, at: datetime | None = None
) -> Alert:
    """The alert that tells operators an announced version will not serve.

    The id is the same for every report of one version, so readers can drop
    copies.
    """
    alert = Alert(
        alert_id=f"{REFUSAL_RULE}-{ready.model_name}-{ready.version}",
        rule=REFUSAL_RULE,
        severity=AlertSeverity.ALERT_SEVERITY_WARNING,
        state=AlertState.ALERT_STATE_FIRING,
        labels={
            "service": "inference",
            "model_name": ready.model_name,
            "model_version": ready.version,
            "reason": reason,
        },
        summary=(
            f"{ready.model_name} {ready.version} not loaded, {reason}: {detail}; "
            "the version in service stays"
        ),
    )
    alert.at.FromDatetime(at or datetime.now(UTC))
    return alert


class ModelFeed:
    """Loads announced model versions and swaps each good one in.

    Of the announcements read together, the newest is tried first; when it
    is refused, the next newest, down to the version already serving. A
    refused version is remembered and never tried again, unless it was
    refused only because its store could not be reached. Each refused
    version is alerted on once, however often it is tried.
    """

    def __init__(
        self,
        *,
        holder: ModelHolder,
        loader: ModelLoader,
        metrics: InferenceMetrics,
        model_name: str,
        alerts: RecordPublisher,
    ) -> None:
        self._holder = holder
        self._loader = loader
        self._metrics = metrics
        self._model_name = model_name
        self._alerts = alerts
        self._refused: set[tuple[str, str]] = set()
        self._alerted: set[str] = set()

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
            self._alert(ready, exc.reason.value, exc.detail)
            return False
        except Exception as exc:  # a broken artifact must never take the service down
            self._refused.add((ready.version, ready.sha256))
            self._metrics.model_loads.labels(LOAD_ERROR).inc()
            logger.exception("model version failed to load", extra=context)
            self._alert(ready, LOAD_ERROR, repr(exc))
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

    def _alert(self, ready: ModelReady, reason: str, detail: str) -> None:
        if ready.version in self._alerted:
            return
        self._alerted.add(ready.version)
        alert = refused_version_alert(ready, reason, detail)
        self._alerts.publish(alert.rule, alert)
