"""What can go wrong in a drill, split by how the caller should react.

DrillError                 root; ``retriable`` says whether to try again
├── SettingsError          a setting cannot be read; fix the environment
├── RefusedError           the command asks for something no drill does
├── PreconditionError      the platform is not fit for a drill right now
├── DrillInterrupted       the service is stopping; the drill ended early
└── FaultError             a fault could not be injected or reverted
    └── RevertError        a fault may still be in place: act on it
"""

from __future__ import annotations


class DrillError(Exception):
    """Root of every error the drill service raises on purpose."""

    retriable: bool = False


class SettingsError(DrillError):
    """An environment variable holds a value the drill service cannot use."""


class RefusedError(DrillError):
    """A drill command names an unknown experiment, target or parameter."""


class PreconditionError(DrillError):
    """The cluster or the probes are not healthy enough to start a drill."""

    retriable = True


class DrillInterrupted(DrillError):
    """The drill service was asked to stop; faults were reverted, nothing judged."""


class FaultError(DrillError):
    """The fault injector's command failed."""

    retriable = True


class RevertError(FaultError):
    """A fault could not be reverted; the target may still be down."""
