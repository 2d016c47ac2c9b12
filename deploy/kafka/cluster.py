"""Run a local three-node Apache Kafka cluster in KRaft mode on loopback.

Each node is both broker and controller, with its own ports, data directory,
log file and pid file under the state directory. The jars come from Maven
Central through ``deploy/kafka/pom.xml`` and are cached outside git.

    python deploy/kafka/cluster.py fetch       # resolve the jars once
    python deploy/kafka/cluster.py start       # format (first time) and start
    python deploy/kafka/cluster.py status
    python deploy/kafka/cluster.py kill-node 1 # kill -9 one node
    python deploy/kafka/cluster.py start-node 1
    python deploy/kafka/cluster.py stop        # stop every node cleanly
    python deploy/kafka/cluster.py destroy     # stop and delete all data

Settings come from the environment: ``RECOPS_KAFKA_PORT_BASE`` (client port
of node 0; node i listens on base+i, its controller on base+100+i),
``RECOPS_STATE_DIR`` (default ``.state`` in the repository) and
``RECOPS_CACHE_DIR`` (default ``~/.cache/recops``). Only the standard library
is used, so the cluster can start before any virtual environment exists.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import dataclasses
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
import xml.etree.ElementTree as ElementTree
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
NODE_COUNT = 3
HEAP = "-Xms384m -Xmx384m"


@dataclasses.dataclass(frozen=True, kw_only=True)
class ClusterLayout:
    """Where the local cluster keeps its jars and data, and its ports."""

    port_base: int
    state_dir: Path
    libs_dir: Path

    @classmethod
    def from_env(cls) -> ClusterLayout:
        cache = Path(
            os.environ.get("RECOPS_CACHE_DIR", Path.home() / ".cache" / "recops")
        )
        state = Path(os.environ.get("RECOPS_STATE_DIR", REPO / ".state"))
        return cls(
            port_base=int(os.environ.get("RECOPS_KAFKA_PORT_BASE", "19092")),
            state_dir=state.resolve() / "kafka",
            libs_dir=cache / f"kafka-{kafka_version()}" / "libs",
        )

    def client_port(self, node_id: int) -> int:
        return self.port_base + node_id

    def controller_port(self, node_id: int) -> int:
        return self.port_base + 100 + node_id

    def node_dir(self, node_id: int) -> Path:
        return self.state_dir / f"node-{node_id}"

    def pid_file(self, node_id: int) -> Path:
        return self.node_dir(node_id) / "kafka.pid"

    @property
    def bootstrap_servers(self) -> str:
        ports = (self.client_port(n) for n in range(NODE_COUNT))
        return ",".join(f"127.0.0.1:{port}" for port in ports)


def kafka_version() -> str:
    """The Kafka version pinned in the pom."""
    ns = {"m": "http://maven.apache.org/POM/4.0.0"}
    tree = ElementTree.parse(HERE / "pom.xml")
    node = tree.find("m:properties/m:kafka.version", ns)
    assert node is not None and node.text
    return node.text


def fetch(layout: ClusterLayout) -> None:
    """Resolve the Kafka jars from Maven Central into the cache, once."""
    marker = layout.libs_dir / ".complete"
    if marker.exists():
        return
    print(f"fetching Kafka {kafka_version()} jars into {layout.libs_dir}")
    subprocess.run(
        [
            "mvn",
            "-q",
            "-B",
            "-f",
            str(HERE / "pom.xml"),
            "dependency:copy-dependencies",
            f"-DoutputDirectory={layout.libs_dir}",
            "-DincludeScope=runtime",
        ],
        check=True,
    )
    marker.touch()


def server_properties(layout: ClusterLayout, node_id: int) -> str:
    voters = ",".join(
        f"{n}@127.0.0.1:{layout.controller_port(n)}" for n in range(NODE_COUNT)
    )
    client, controller = layout.client_port(node_id), layout.controller_port(node_id)
    settings = {
        "process.roles": "broker,controller",
        "node.id": node_id,
        "controller.quorum.voters": voters,
        "listeners": f"PLAINTEXT://127.0.0.1:{client},"
        f"CONTROLLER://127.0.0.1:{controller}",
        "advertised.listeners": f"PLAINTEXT://127.0.0.1:{client}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "log.dirs": layout.node_dir(node_id) / "data",
        "num.partitions": 6,
        "default.replication.factor": 3,
        "min.insync.replicas": 2,
        "offsets.topic.replication.factor": 3,
        "offsets.topic.num.partitions": 12,
        "transaction.state.log.replication.factor": 3,
        "transaction.state.log.min.isr": 2,
        "transaction.state.log.num.partitions": 6,
        "share.coordinator.state.topic.replication.factor": 3,
        "share.coordinator.state.topic.min.isr": 2,
        "auto.create.topics.enable": "false",
        "unclean.leader.election.enable": "false",
        "group.initial.rebalance.delay.ms": 0,
        "num.network.threads": 2,
        "num.io.threads": 2,
        "background.threads": 2,
        "num.recovery.threads.per.data.dir": 1,
        "log.retention.hours": 720,
    }
    return "".join(f"{key}={value}\n" for key, value in settings.items())


def java_command(
    layout: ClusterLayout, node_id: int, main_class: str, *args: str
) -> list[str]:
    return [
        "java",
        *HEAP.split(),
        f"-Dkafka.logs.dir={layout.node_dir(node_id)}",
        "-XX:+UseSerialGC",
        "-XX:TieredStopAtLevel=1",
        "-Djava.awt.headless=true",
        f"-Dlog4j2.configurationFile={HERE / 'log4j2.properties'}",
        "-cp",
        f"{layout.libs_dir}/*",
        main_class,
        *args,
    ]


def format_storage(layout: ClusterLayout) -> None:
    """Write each node's config and format its storage, the first time only."""
    cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode()[:22]
    for node_id in range(NODE_COUNT):
        node_dir = layout.node_dir(node_id)
        if (node_dir / "data" / "meta.properties").exists():
            continue
        node_dir.mkdir(parents=True, exist_ok=True)
        config = node_dir / "server.properties"
        config.write_text(server_properties(layout, node_id))
        command = java_command(
            layout,
            node_id,
            "kafka.tools.StorageTool",
            "format",
            "-t",
            cluster_id,
            "-c",
            str(config),
        )
        subprocess.run(
            command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT
        )


def read_pid(layout: ClusterLayout, node_id: int) -> int | None:
    try:
        pid = int(layout.pid_file(node_id).read_text())
    except (FileNotFoundError, ValueError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    return pid


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def start_node(layout: ClusterLayout, node_id: int) -> None:
    """Start one node in the background unless it already runs."""
    if read_pid(layout, node_id) is not None:
        return
    node_dir = layout.node_dir(node_id)
    command = java_command(
        layout, node_id, "kafka.Kafka", str(node_dir / "server.properties")
    )
    with open(node_dir / "stdout.log", "ab") as out:
        process = subprocess.Popen(
            command,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    layout.pid_file(node_id).write_text(str(process.pid))


def wait_for_nodes(layout: ClusterLayout, nodes: list[int], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    for node_id in nodes:
        while not port_open(layout.client_port(node_id)):
            if read_pid(layout, node_id) is None:
                log = layout.node_dir(node_id) / "stdout.log"
                raise SystemExit(f"node {node_id} exited during start; see {log}")
            if time.monotonic() > deadline:
                raise SystemExit(f"node {node_id} not listening after {timeout_s}s")
            time.sleep(0.25)


def stop_nodes(layout: ClusterLayout, nodes: list[int], *, kill: bool = False) -> None:
    """Stop nodes together: SIGTERM and wait for a clean shutdown, or SIGKILL.

    All nodes are signalled at once, so the last one does not wait for a
    controller quorum that its peers already left.
    """
    pids = {n: pid for n in nodes if (pid := read_pid(layout, n)) is not None}
    for pid in pids.values():
        os.kill(pid, signal.SIGKILL if kill else signal.SIGTERM)
    deadline = time.monotonic() + 30
    for node_id, pid in pids.items():
        while read_pid(layout, node_id) is not None and time.monotonic() < deadline:
            _reap(pid)
            time.sleep(0.1)
        if read_pid(layout, node_id) is not None:
            os.kill(pid, signal.SIGKILL)
            _reap(pid)
        layout.pid_file(node_id).unlink(missing_ok=True)


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def status(layout: ClusterLayout) -> dict[str, object]:
    nodes = []
    for node_id in range(NODE_COUNT):
        pid = read_pid(layout, node_id)
        nodes.append(
            {
                "node_id": node_id,
                "pid": pid,
                "client_port": layout.client_port(node_id),
                "listening": pid is not None and port_open(layout.client_port(node_id)),
            }
        )
    return {"bootstrap_servers": layout.bootstrap_servers, "nodes": nodes}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "command",
        choices=[
            "fetch",
            "start",
            "stop",
            "status",
            "destroy",
            "bootstrap",
            "stop-node",
            "kill-node",
            "start-node",
        ],
    )
    parser.add_argument("node", nargs="?", type=int, choices=range(NODE_COUNT))
    parser.add_argument("--timeout-s", type=float, default=90.0)
    args = parser.parse_args(argv)
    layout = ClusterLayout.from_env()
    if args.command.endswith("-node") and args.node is None:
        parser.error(f"{args.command} needs a node id")

    if args.command == "fetch":
        fetch(layout)
    elif args.command == "start":
        fetch(layout)
        format_storage(layout)
        for node_id in range(NODE_COUNT):
            start_node(layout, node_id)
        wait_for_nodes(layout, list(range(NODE_COUNT)), args.timeout_s)
        print(layout.bootstrap_servers)
    elif args.command == "stop":
        stop_nodes(layout, list(range(NODE_COUNT)))
    elif args.command == "destroy":
        stop_nodes(layout, list(range(NODE_COUNT)), kill=True)
        shutil.rmtree(layout.state_dir, ignore_errors=True)
    elif args.command == "status":
        print(json.dumps(status(layout), indent=2))
    elif args.command == "bootstrap":
        print(layout.bootstrap_servers)
    elif args.command == "stop-node":
        stop_nodes(layout, [args.node])
    elif args.command == "kill-node":
        stop_nodes(layout, [args.node], kill=True)
    elif args.command == "start-node":
        start_node(layout, args.node)
        wait_for_nodes(layout, [args.node], args.timeout_s)
    return 0


if __name__ == "__main__":
    sys.exit(main())
