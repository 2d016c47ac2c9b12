"""Fixtures shared by the whole suite.

Integration tests run against a real three-node Kafka cluster started once
per test run on ports of its own, so a demo cluster may run beside it.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient

from eventbus import KafkaSettings, ensure_topics
from eventbus.topics import load_coordinators

REPO = Path(__file__).resolve().parent.parent
CLUSTER_SCRIPT = REPO / "deploy" / "kafka" / "cluster.py"
TEST_PORT_BASE = int(os.environ.get("RECOPS_TEST_KAFKA_PORT_BASE", "29092"))


@dataclasses.dataclass(frozen=True)
class LocalCluster:
    """A running test cluster and the means to hurt one of its nodes."""

    bootstrap_servers: str
    env: dict[str, str]

    def run(self, *args: str) -> str:
        result = subprocess.run(
            [sys.executable, str(CLUSTER_SCRIPT), *args],
            env=self.env,
            check=True,
            capture_output=True,
            text=True,
        )
        return result.stdout

    def kill_node(self, node_id: int) -> None:
        self.run("kill-node", str(node_id))

    def stop_node(self, node_id: int) -> None:
        self.run("stop-node", str(node_id))

    def start_node(self, node_id: int) -> None:
        self.run("start-node", str(node_id))

    def start_stopped_nodes(self) -> None:
        """Start every node that is down, together, as a lost quorum needs."""
        self.run("start")

    def wait_until_whole(self, timeout_s: float = 90.0) -> None:
        """Wait until every node is back and every partition fully in sync."""
        admin = AdminClient({"bootstrap.servers": self.bootstrap_servers})
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            metadata = admin.list_topics(timeout=10)
            partitions = [
                partition
                for topic in metadata.topics.values()
                for partition in topic.partitions.values()
            ]
            if len(metadata.brokers) == 3 and all(
                len(p.isrs) == len(p.replicas) for p in partitions
            ):
                return
            time.sleep(0.5)
        raise TimeoutError(f"cluster not whole after {timeout_s}s")

    def status(self) -> dict[str, object]:
        return json.loads(self.run("status"))  # type: ignore[no-any-return]


@pytest.fixture(scope="session")
def kafka_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    state_dir = tmp_path_factory.mktemp("kafka-state")
    env = {
        **os.environ,
        "RECOPS_KAFKA_PORT_BASE": str(TEST_PORT_BASE),
        "RECOPS_STATE_DIR": str(state_dir),
    }
    cluster = LocalCluster(
        bootstrap_servers=",".join(f"127.0.0.1:{TEST_PORT_BASE + n}" for n in range(3)),
        env=env,
    )
    try:
        cluster.run("start")
        ensure_topics(
            AdminClient({"bootstrap.servers": cluster.bootstrap_servers}), "warm-up."
        )
        load_coordinators(cluster.bootstrap_servers)
        cluster.wait_until_whole()
        yield cluster
    finally:
        cluster.run("destroy")


@pytest.fixture
def kafka_settings(kafka_cluster: LocalCluster) -> KafkaSettings:
    """Settings for one test: its own topic prefix, its topics created."""
    settings = KafkaSettings(
        bootstrap_servers=kafka_cluster.bootstrap_servers,
        topic_prefix=f"t{uuid.uuid4().hex[:8]}.",
        client_id="recops-test",
    )
    ensure_topics(AdminClient(settings.admin_config()), settings.topic_prefix)
    return settings
