"""A real kafka-node-kill drill on the test cluster, with real ingest and inference.

The drill service, ingest and inference run as the operator starts them; the
test asks for the drill through the operator command and reads its result.
Node 1 is started again in ``finally`` whatever the drill did.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from service_processes import ServiceProcess, free_port, service_env

from drill import cli
from drill.ledger import FaultLedger
from eventbus import KafkaSettings
from tests.conftest import LocalCluster

TARGET_NODE = 1


@pytest.fixture
def services(
    kafka_cluster: LocalCluster, kafka_settings: KafkaSettings, tmp_path: Path
) -> Iterator[dict[str, ServiceProcess]]:
    grpc_port = free_port()
    common = {
        "RECOPS_KAFKA_BOOTSTRAP": kafka_settings.bootstrap_servers,
        "RECOPS_TOPIC_PREFIX": kafka_settings.topic_prefix,
        "RECOPS_STATE_DIR": str(tmp_path / "state"),
    }
    started: dict[str, ServiceProcess] = {}
    try:
        started["ingest"] = ServiceProcess(
            "ingest", service_env(**common, RECOPS_INGEST_METRICS_PORT="0")
        )
        started["inference"] = ServiceProcess(
            "inference",
            service_env(
                **common,
                RECOPS_INFERENCE_GRPC_PORT=str(grpc_port),
                RECOPS_INFERENCE_METRICS_PORT="0",
            ),
        )
        drill_env = {
            **common,
            # The cluster script must find the test cluster, not the dev one.
            "RECOPS_KAFKA_PORT_BASE": kafka_cluster.env["RECOPS_KAFKA_PORT_BASE"],
            "RECOPS_STATE_DIR": kafka_cluster.env["RECOPS_STATE_DIR"],
            "RECOPS_DRILL_LEDGER_PATH": str(tmp_path / "faults.jsonl"),
            "RECOPS_DRILL_REPORTS_DIR": str(tmp_path / "reports"),
            "RECOPS_DRILL_GRPC_TARGET": f"127.0.0.1:{grpc_port}",
            "RECOPS_DRILL_METRICS_PORT": "0",
            "RECOPS_DRILL_BASELINE_SECONDS": "2",
        }
        started["drill"] = ServiceProcess("drill", service_env(**drill_env))
        started["ingest"].wait_for_log("ingest started")
        started["inference"].wait_for_log("serving")
        started["drill"].wait_for_log("waiting for drill commands")
        yield started
    finally:
        for process in started.values():
            process.close()
        kafka_cluster.start_node(TARGET_NODE)
        kafka_cluster.wait_until_whole()


def run_drill(
    kafka: KafkaSettings, capsys: pytest.CaptureFixture[str]
) -> tuple[int, dict[str, object]]:
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    args = parser.parse_args(
        [
            "kafka-node-kill",
            f"--target=kafka-node-{TARGET_NODE}",
            "--fault-seconds=8",
            "--probe-events-per-second=20",
            "--requests-per-second=10",
            "--max-recovery-seconds=30",
            "--timeout-seconds=150",
        ]
    )
    status = cli.run(args, kafka)
    return status, json.loads(capsys.readouterr().out)


def test_killing_a_kafka_node_loses_no_acknowledged_event_and_leaves_it_running(
    kafka_cluster: LocalCluster,
    kafka_settings: KafkaSettings,
    services: dict[str, ServiceProcess],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    status, result = run_drill(kafka_settings, capsys)

    assert result["verdict"] == "PASSED", result["summary"]
    assert status == 0
    assert result["events_lost"] == 0
    assert result["events_acknowledged"] >= 100
    assert result["events_ingested"] == result["events_acknowledged"]
    assert result["requests_total"] > 0
    measurements = result["measurements"]
    assert isinstance(measurements, dict)
    assert measurements["node_down_seconds"] >= 8
    assert "requests_latency_p99_seconds_during_fault" in measurements

    report = tmp_path / "reports" / f"{result['drill_id']}.json"
    assert json.loads(report.read_text())["verdict"] == "PASSED"
    assert "**PASSED**" in report.with_suffix(".md").read_text()
    nodes = kafka_cluster.status()["nodes"]
    assert isinstance(nodes, list)
    assert all(node["listening"] for node in nodes)
    ledger = FaultLedger(tmp_path / "faults.jsonl")
    assert [e.action for e in ledger.entries()] == ["injecting", "reverted"]
    assert services["drill"].terminate() == 0
