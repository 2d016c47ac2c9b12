"""The messages carried on recops topics, generated from ``proto/recops/v1``.

Import them from here rather than from the generated modules, so the rest of
the code does not depend on where the build puts them.
"""

from recops.v1.events_pb2 import (
    Alert,
    AlertSeverity,
    AlertState,
    BehaviourEvent,
    BehaviourType,
    DeadLetter,
    DrillCommand,
    DrillResult,
    DrillVerdict,
    ModelReady,
    ServedRecommendation,
    TermCount,
    UserProfile,
)

__all__ = [
    "Alert",
    "AlertSeverity",
    "AlertState",
    "BehaviourEvent",
    "BehaviourType",
    "DeadLetter",
    "DrillCommand",
    "DrillResult",
    "DrillVerdict",
    "ModelReady",
    "ServedRecommendation",
    "TermCount",
    "UserProfile",
]
