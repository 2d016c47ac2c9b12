"""Disaster-recovery drills: hurt the platform on purpose, measure how it copes.

A drill is asked for on DRILL_COMMANDS and answered on DRILL_RESULTS, with a
report in ``reports/drills``. The first experiment, ``kafka-node-kill``
(:mod:`drill.kafka_node_kill`), kills one Kafka node while probes buy and ask
for recommendations, and proves no acknowledged purchase was lost.
"""

from drill.errors import (
    DrillError,
    FaultError,
    PreconditionError,
    RefusedError,
    RevertError,
    SettingsError,
)
from drill.settings import DrillSettings

__all__ = [
    "DrillError",
    "DrillSettings",
    "FaultError",
    "PreconditionError",
    "RefusedError",
    "RevertError",
    "SettingsError",
]
