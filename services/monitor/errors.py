"""What can go wrong in the monitor, split by how a caller should react.

MonitorError            root; ``retriable`` says whether to try again
├── SettingsError       a setting cannot be read; fix the environment
├── LagReadError        the cluster did not answer; retry next evaluation
└── PublishError        an alert was not acknowledged; retry next evaluation
"""

from __future__ import annotations


class MonitorError(Exception):
    """Root of every error the monitor raises on purpose."""

    retriable: bool = False


class SettingsError(MonitorError):
    """An environment variable holds a value the monitor cannot use."""


class LagReadError(MonitorError):
    """Committed or end offsets could not be read; the lag is unknown."""

    retriable = True


class PublishError(MonitorError):
    """An alert was not acknowledged by the cluster in time."""

    retriable = True
