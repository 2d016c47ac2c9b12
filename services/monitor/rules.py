"""Alert rules: when a measured value should raise or clear an alert.

A rule works like a Prometheus alerting rule with a ``for`` clause. A value
above the threshold makes the rule *pending*; once it has stayed above for
``for_seconds`` the rule is *firing* and says so once. When the value falls
back to the threshold or below, a firing rule says *resolved* once and a
pending one quietly returns to *inactive*.
"""

from __future__ import annotations

import enum


class RuleState(enum.Enum):
    """Where a rule stands between evaluations."""

    INACTIVE = "inactive"
    PENDING = "pending"
    FIRING = "firing"


class AlertChange(enum.Enum):
    """What an evaluation tells the operator, if anything."""

    FIRING = "firing"
    RESOLVED = "resolved"


class ThresholdRule:
    """Fires when a value stays above a threshold for a while.

    Time comes from the caller as monotonic seconds, so tests drive the
    clock. A value the caller could not read is never passed in: the rule then
    simply keeps its state until the next value arrives.
    """

    def __init__(self, *, name: str, threshold: float, for_seconds: float) -> None:
        self.name = name
        self.threshold = threshold
        self.for_seconds = for_seconds
        self.state = RuleState.INACTIVE
        self._above_since: float | None = None

    def evaluate(self, value: float, now_seconds: float) -> AlertChange | None:
        """Take one new value; return the change to announce, if any."""
        if value <= self.threshold:
            return self._clear()
        if self._above_since is None:
            self._above_since = now_seconds
            self.state = RuleState.PENDING
        held_seconds = now_seconds - self._above_since
        if self.state is RuleState.PENDING and held_seconds >= self.for_seconds:
            self.state = RuleState.FIRING
            return AlertChange.FIRING
        return None

    def _clear(self) -> AlertChange | None:
        was_firing = self.state is RuleState.FIRING
        self.state = RuleState.INACTIVE
        self._above_since = None
        return AlertChange.RESOLVED if was_firing else None
