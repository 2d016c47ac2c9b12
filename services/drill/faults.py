"""Faults a drill injects, and the cluster controls they act through.

Every fault is an :class:`Injector`: ``inject`` puts it in, ``revert`` takes it
out again. ``revert`` must work whatever state the target is in, so a drill
can always call it, however far ``inject`` got.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Protocol

from drill.errors import FaultError, RevertError

logger = logging.getLogger(__name__)

KAFKA_NODE_PREFIX = "kafka-node-"


class ClusterControl(Protocol):
    """What a drill can do to the Kafka cluster's nodes."""

    def kill_node(self, node_id: int) -> None:
        """Kill one node at once (SIGKILL), as a crash would."""
        ...

    def start_node(self, node_id: int) -> None:
        """Start one node unless it runs; return once it listens."""
        ...

    def listening_nodes(self) -> dict[int, bool]:
        """Each node's id and whether it accepts connections."""
        ...


class ScriptCluster:
    """Controls the local cluster through ``deploy/kafka/cluster.py``."""

    def __init__(
        self,
        *,
        script: Path,
        python: str,
        env: Mapping[str, str],
        timeout_seconds: float,
    ) -> None:
        self._command = [python, str(script)]
        self._env = {**os.environ, **env}
        self._timeout_seconds = timeout_seconds

    def kill_node(self, node_id: int) -> None:
        self._run("kill-node", str(node_id))

    def start_node(self, node_id: int) -> None:
        self._run("start-node", str(node_id))

    def listening_nodes(self) -> dict[int, bool]:
        status = json.loads(self._run("status"))
        return {
            int(node["node_id"]): bool(node["listening"]) for node in status["nodes"]
        }

    def _run(self, *args: str) -> str:
        try:
            result = subprocess.run(
                [*self._command, *args],
                env=self._env,
                capture_output=True,
                text=True,
                timeout=self._timeout_seconds,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise FaultError(f"cluster {' '.join(args)} timed out") from exc
        if result.returncode != 0:
            detail = (result.stderr or result.stdout).strip()[-500:]
            raise FaultError(f"cluster {' '.join(args)} failed: {detail}")
        return result.stdout


class Injector(Protocol):
    """One fault that can be put in and taken out again."""

    fault: str
    target: str

    def inject(self) -> None:
        """Put the fault in."""
        ...

    def revert(self) -> None:
        """Take the fault out; safe to call whatever ``inject`` did."""
        ...


def kafka_node_id(target: str) -> int:
    """The node id in a target such as ``kafka-node-1``."""
    number = target.removeprefix(KAFKA_NODE_PREFIX)
    if number == target or not number.isdigit():
        raise ValueError(f"target {target!r} is not {KAFKA_NODE_PREFIX}<id>")
    return int(number)


class KafkaNodeKill:
    """Kills one Kafka node with SIGKILL; reverting starts it again."""

    fault = "kafka-node-kill"

    def __init__(
        self,
        cluster: ClusterControl,
        node_id: int,
        *,
        revert_attempts: int = 3,
        backoff_seconds: float = 2.0,
    ) -> None:
        self.target = f"{KAFKA_NODE_PREFIX}{node_id}"
        self._cluster = cluster
        self._node_id = node_id
        self._revert_attempts = revert_attempts
        self._backoff_seconds = backoff_seconds

    def inject(self) -> None:
        self._cluster.kill_node(self._node_id)

    def revert(self) -> None:
        for attempt in range(1, self._revert_attempts + 1):
            try:
                self._cluster.start_node(self._node_id)
                return
            except FaultError as exc:
                logger.warning(
                    "node did not start, attempt %d of %d: %s",
                    attempt,
                    self._revert_attempts,
                    exc,
                    extra={"target": self.target},
                )
                time.sleep(self._backoff_seconds * attempt)
        raise RevertError(f"{self.target} did not start again; it may still be down")
