"""Runs one drill command to a result, whatever happens, and files its report."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime

from drill.errors import DrillError, RefusedError
from drill.experiment import Experiment
from drill.faults import ClusterControl, KafkaNodeKill, kafka_node_id
from drill.ledger import FaultLedger
from drill.metrics import DrillMetrics
from drill.plan import plan_from_command, valid_drill_id
from drill.report import verdict_name, write_report
from drill.settings import DrillSettings
from eventbus.contracts import DrillCommand, DrillResult, DrillVerdict

logger = logging.getLogger(__name__)


def _now() -> datetime:
    return datetime.now(UTC)


class DrillRunner:
    """Turns a command into a result: passed, failed, aborted or refused.

    An experiment that raises still yields a result (ABORTED, or REFUSED for
    a command no experiment can run), so the operator always hears back.
    """

    def __init__(
        self,
        *,
        settings: DrillSettings,
        experiments: Mapping[str, Experiment],
        metrics: DrillMetrics,
        wall_clock: Callable[[], datetime] = _now,
    ) -> None:
        self._settings = settings
        self._experiments = experiments
        self._metrics = metrics
        self._wall_clock = wall_clock

    def run(self, command: DrillCommand) -> DrillResult:
        started_at, started = self._wall_clock(), time.monotonic()
        context = {"drill_id": command.drill_id, "experiment": command.experiment}
        logger.info("drill started", extra={**context, "target": command.target})

        result = self._outcome(command)
        result.drill_id, result.target = command.drill_id, command.target
        result.experiment = command.experiment
        result.started_at.FromDatetime(started_at)
        result.finished_at.FromDatetime(self._wall_clock())
        if valid_drill_id(command.drill_id):
            write_report(result, self._settings.reports_dir)

        self._record(result, time.monotonic() - started)
        logger.info(
            "drill finished: %s",
            result.summary,
            extra={**context, "verdict": verdict_name(result.verdict)},
        )
        return result

    def _outcome(self, command: DrillCommand) -> DrillResult:
        try:
            plan = plan_from_command(command, self._settings)
            experiment = self._experiments.get(plan.experiment)
            if experiment is None:
                known = sorted(self._experiments)
                raise RefusedError(
                    f"unknown experiment {plan.experiment!r}; known {known}"
                )
            return experiment.run(plan)
        except RefusedError as exc:
            return _ended(DrillVerdict.DRILL_VERDICT_REFUSED, f"refused: {exc}")
        except DrillError as exc:
            logger.error("drill aborted: %s", exc, extra={"drill_id": command.drill_id})
            return _ended(DrillVerdict.DRILL_VERDICT_ABORTED, f"aborted: {exc}")
        except Exception as exc:
            logger.exception("drill aborted", extra={"drill_id": command.drill_id})
            summary = f"aborted: unexpected {type(exc).__name__}: {exc}"
            return _ended(DrillVerdict.DRILL_VERDICT_ABORTED, summary)

    def _record(self, result: DrillResult, seconds: float) -> None:
        known = result.experiment in self._experiments
        experiment = result.experiment if known else "unknown"
        verdict = verdict_name(result.verdict).lower()
        self._metrics.drills.labels(experiment, verdict).inc()
        self._metrics.drill_duration_seconds.labels(experiment).observe(seconds)


def _ended(verdict: DrillVerdict, summary: str) -> DrillResult:
    return DrillResult(verdict=verdict, summary=summary, seconds_to_recover=-1.0)


def revert_open_faults(ledger: FaultLedger, cluster: ClusterControl) -> int:
    """Revert every fault the ledger shows still open; return how many.

    Run at start, so a drill service that died mid-drill never leaves a node
    down for longer than its own restart.
    """
    reverted = 0
    for entry in ledger.open_faults():
        if entry.fault != KafkaNodeKill.fault:
            logger.error("cannot revert unknown fault %s", entry.fault)
            continue
        logger.warning(
            "reverting a fault left open",
            extra={"drill_id": entry.drill_id, "target": entry.target},
        )
        KafkaNodeKill(cluster, kafka_node_id(entry.target)).revert()
        ledger.reverted(entry.drill_id, entry.fault, entry.target)
        reverted += 1
    return reverted
