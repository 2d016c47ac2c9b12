"""A drill command, checked and completed with defaults: what exactly to run."""

from __future__ import annotations

import dataclasses
import re

from drill.errors import RefusedError
from drill.settings import DrillSettings
from eventbus.contracts import DrillCommand

DRILL_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")

# Parameter name -> (lowest, highest) value a command may ask for.
PARAMETER_BOUNDS = {
    "fault_seconds": (1.0, 600.0),
    "probe_events_per_second": (0.5, 1000.0),
    "requests_per_second": (0.5, 1000.0),
    "max_recovery_seconds": (1.0, 1800.0),
}


@dataclasses.dataclass(frozen=True, kw_only=True)
class DrillPlan:
    """One drill to run: experiment, target and every figure it needs."""

    drill_id: str
    experiment: str
    target: str
    fault_seconds: float
    probe_events_per_second: float
    requests_per_second: float
    max_recovery_seconds: float


def valid_drill_id(drill_id: str) -> bool:
    """Whether a drill id is safe to use in file names and event ids."""
    return DRILL_ID.fullmatch(drill_id) is not None


def plan_from_command(command: DrillCommand, settings: DrillSettings) -> DrillPlan:
    """The plan a command asks for; raises :class:`RefusedError` if it cannot be run."""
    if not valid_drill_id(command.drill_id):
        raise RefusedError(
            f"drill id {command.drill_id!r} is not [A-Za-z0-9._-]{{1,64}}"
        )
    if command.dry_run:
        raise RefusedError("dry runs are not supported by this drill service")
    unknown = sorted(set(command.parameters) - set(PARAMETER_BOUNDS))
    if unknown:
        raise RefusedError(f"unknown parameters {unknown}")
    figures = {name: _figure(command, name, settings) for name in PARAMETER_BOUNDS}
    return DrillPlan(
        drill_id=command.drill_id,
        experiment=command.experiment,
        target=command.target,
        **figures,
    )


def _figure(command: DrillCommand, name: str, settings: DrillSettings) -> float:
    raw = command.parameters.get(name)
    if raw is None:
        return float(getattr(settings, name))
    try:
        value = float(raw)
    except ValueError:
        raise RefusedError(f"parameter {name}={raw!r} is not a number") from None
    lowest, highest = PARAMETER_BOUNDS[name]
    if not lowest <= value <= highest:
        raise RefusedError(
            f"parameter {name}={value:g} is outside {lowest:g}..{highest:g}"
        )
    return value
