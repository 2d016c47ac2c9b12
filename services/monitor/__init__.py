"""Watches the platform and raises alerts an operator should act on.

The first rule, ``ConsumerLagHigh``, fires when ingest falls too far behind
the behaviour events producers send; see :mod:`monitor.rules`.
"""

from monitor.errors import LagReadError, MonitorError, PublishError, SettingsError
from monitor.settings import MonitorSettings

__all__ = [
    "LagReadError",
    "MonitorError",
    "MonitorSettings",
    "PublishError",
    "SettingsError",
]
