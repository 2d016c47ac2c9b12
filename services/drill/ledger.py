"""The fault ledger: every fault is written down before it is injected.

One JSON object a line, appended and synced to disk: ``injecting`` before a
fault goes in, ``reverted`` once it is out. A fault with no ``reverted`` line
is still open, which after a crash tells the next drill service start what
to put right.
"""

from __future__ import annotations

import dataclasses
import json
import os
from datetime import UTC, datetime
from pathlib import Path

INJECTING = "injecting"
REVERTED = "reverted"


@dataclasses.dataclass(frozen=True, kw_only=True)
class FaultEntry:
    """One line of the ledger."""

    drill_id: str
    fault: str
    target: str
    action: str
    at: str


class FaultLedger:
    """An append-only file of injected and reverted faults."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def injecting(self, drill_id: str, fault: str, target: str) -> None:
        """Write down a fault that is about to be injected."""
        self._append(drill_id, fault, target, INJECTING)

    def reverted(self, drill_id: str, fault: str, target: str) -> None:
        """Write down that a fault has been taken out again."""
        self._append(drill_id, fault, target, REVERTED)

    def entries(self) -> list[FaultEntry]:
        """Every line so far, oldest first."""
        if not self.path.exists():
            return []
        lines = self.path.read_text().splitlines()
        return [FaultEntry(**json.loads(line)) for line in lines if line.strip()]

    def open_faults(self) -> list[FaultEntry]:
        """Faults injected and not reverted since, oldest first."""
        open_: dict[tuple[str, str, str], FaultEntry] = {}
        for entry in self.entries():
            key = (entry.drill_id, entry.fault, entry.target)
            if entry.action == INJECTING:
                open_[key] = entry
            else:
                open_.pop(key, None)
        return list(open_.values())

    def _append(self, drill_id: str, fault: str, target: str, action: str) -> None:
        entry = FaultEntry(
            drill_id=drill_id,
            fault=fault,
            target=target,
            action=action,
            at=datetime.now(UTC).isoformat(),
        )
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a") as ledger:
            ledger.write(json.dumps(dataclasses.asdict(entry)) + "\n")
            ledger.flush()
            os.fsync(ledger.fileno())
