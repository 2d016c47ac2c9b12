import json
import sys
from pathlib import Path

import pytest

from drill.errors import FaultError, RevertError
from drill.faults import KafkaNodeKill, ScriptCluster, kafka_node_id

FAKE_SCRIPT = """
import json, os, sys
port_base = os.environ.get("RECOPS_KAFKA_PORT_BASE")
with open(os.environ["CALLS"], "a") as calls:
    calls.write(json.dumps([sys.argv[1:], port_base]) + "\\n")
if sys.argv[1] == "status":
    nodes = [{"node_id": n, "listening": n != 2} for n in range(3)]
    print(json.dumps({"nodes": nodes}))
if sys.argv[1] == "start-node" and sys.argv[2] == "2":
    sys.exit("node 2 exited during start")
"""


@pytest.fixture
def script_cluster(tmp_path: Path) -> tuple[ScriptCluster, Path]:
    script = tmp_path / "cluster.py"
    script.write_text(FAKE_SCRIPT)
    calls = tmp_path / "calls.jsonl"
    cluster = ScriptCluster(
        script=script,
        python=sys.executable,
        env={"RECOPS_KAFKA_PORT_BASE": "34092", "CALLS": str(calls)},
        timeout_seconds=30,
    )
    return cluster, calls


def test_the_script_cluster_runs_the_script_with_the_clusters_settings(
    script_cluster: tuple[ScriptCluster, Path],
) -> None:
    cluster, calls = script_cluster

    cluster.kill_node(1)
    cluster.start_node(1)
    listening = cluster.listening_nodes()

    lines = [json.loads(line) for line in calls.read_text().splitlines()]
    assert lines == [
        [["kill-node", "1"], "34092"],
        [["start-node", "1"], "34092"],
        [["status"], "34092"],
    ]
    assert listening == {0: True, 1: True, 2: False}


def test_a_failing_script_command_is_a_fault_error_with_its_reason(
    script_cluster: tuple[ScriptCluster, Path],
) -> None:
    cluster, _ = script_cluster

    with pytest.raises(FaultError, match="node 2 exited during start"):
        cluster.start_node(2)


class FlakyCluster:
    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.starts = 0

    def kill_node(self, node_id: int) -> None:
        pass

    def start_node(self, node_id: int) -> None:
        self.starts += 1
        if self.starts <= self.failures:
            raise FaultError("not listening yet")

    def listening_nodes(self) -> dict[int, bool]:
        return {0: True, 1: True, 2: True}


def test_a_revert_tries_again_when_the_node_does_not_start_at_first() -> None:
    cluster = FlakyCluster(failures=2)

    KafkaNodeKill(cluster, 1, backoff_seconds=0).revert()

    assert cluster.starts == 3


def test_a_revert_that_never_succeeds_says_the_node_may_be_down() -> None:
    cluster = FlakyCluster(failures=10)
    kill = KafkaNodeKill(cluster, 1, revert_attempts=3, backoff_seconds=0)

    with pytest.raises(RevertError, match="kafka-node-1"):
        kill.revert()
    assert cluster.starts == 3


@pytest.mark.parametrize(
    ("target", "node"), [("kafka-node-0", 0), ("kafka-node-12", 12)]
)
def test_a_kafka_target_names_its_node(target: str, node: int) -> None:
    assert kafka_node_id(target) == node


@pytest.mark.parametrize("target", ["kafka-node-", "kafka-node-x", "zookeeper-1", "1"])
def test_a_target_that_is_not_a_kafka_node_is_refused(target: str) -> None:
    with pytest.raises(ValueError):
        kafka_node_id(target)
