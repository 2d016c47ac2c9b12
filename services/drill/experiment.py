"""Experiments a drill can run, and the shape they share."""

from __future__ import annotations

from typing import Protocol

from drill.plan import DrillPlan
from eventbus.contracts import DrillResult


class Experiment(Protocol):
    """A named way to hurt the platform and judge how it coped."""

    name: str

    def run(self, plan: DrillPlan) -> DrillResult:
        """Run the drill to the end and say what was measured.

        Whatever happens, a fault the experiment injected is reverted before
        it returns or raises.
        """
        ...
