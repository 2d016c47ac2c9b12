"""The whole recops path on the real shop data, from one command.

``make demo`` runs this: a fresh three-node Kafka cluster, every service as its
own process, the retail transactions replayed through ingest, a training
snapshot, a trained and published model, Recommend served over gRPC and
measured, the monitor's consumer-lag alert, and a broker-kill drill. It ends
with a summary printed and written to ``reports/demo-summary.json``.
"""

from __future__ import annotations

import argparse
import collections
import json
import logging
import os
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import grpc
import pyarrow.parquet as pq
from confluent_kafka import Consumer, KafkaError, TopicPartition
from confluent_kafka.admin import AdminClient
from prometheus_client.parser import text_string_to_metric_families
from recops.v1 import storefront_pb2, storefront_pb2_grpc

from deploy.local.stack import REPO, ServiceProcess, service_env, wait_for_port
from eventbus import KafkaSettings, decode, ensure_topics
from eventbus.contracts import (
    Alert,
    AlertState,
    DeadLetter,
    DrillResult,
    DrillVerdict,
    ModelReady,
)
from eventbus.topics import Topic, load_coordinators

logger = logging.getLogger("demo")

DATA = REPO.parent / "shared" / "data"
CLUSTER_SCRIPT = REPO / "deploy" / "kafka" / "cluster.py"
INGEST_GROUP = "recops-ingest"
GRPC_PORT = 50051


class Demo:
    """The demo's steps, in order, sharing one environment and summary."""

    def __init__(self, *, state_dir: Path, port_base: int, reports_dir: Path) -> None:
        self.state_dir = state_dir
        self.reports_dir = reports_dir
        bootstrap = ",".join(f"127.0.0.1:{port_base + n}" for n in range(3))
        self.env = service_env(
            RECOPS_STATE_DIR=str(state_dir),
            RECOPS_KAFKA_PORT_BASE=str(port_base),
            RECOPS_KAFKA_BOOTSTRAP=bootstrap,
            RECOPS_TOPIC_PREFIX="recops.",
            RECOPS_REPORTS_DIR=str(reports_dir),
        )
        self.settings = KafkaSettings(bootstrap_servers=bootstrap, client_id="demo")
        self.summary: dict[str, object] = {}
        self.step_seconds: dict[str, float] = {}
        self.services: dict[str, ServiceProcess] = {}

    # -- plumbing ---------------------------------------------------------

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        print(f"==> {name}", flush=True)
        started = time.monotonic()
        yield
        self.step_seconds[name] = round(time.monotonic() - started, 1)
        print(f"    done in {self.step_seconds[name]}s", flush=True)

    def run_tool(self, *args: str, timeout_s: float = 900) -> str:
        """Run a command to completion; return its stdout, stderr to the log."""
        log_path = (
            self.state_dir / "logs" / f"{args[1] if args[0] == '-m' else 'tool'}.log"
        )
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(log_path, "ab") as log:
            result = subprocess.run(
                [sys.executable, *args],
                cwd=REPO,
                env=self.env,
                stdout=subprocess.PIPE,
                stderr=log,
                timeout=timeout_s,
                check=False,
            )
        stdout = result.stdout.decode()
        if result.returncode != 0:
            raise RuntimeError(
                f"{' '.join(args)} failed ({result.returncode}); see {log_path}"
            )
        return stdout

    def start_service(self, name: str, *args: str) -> ServiceProcess:
        service = ServiceProcess(
            name=name,
            module=name,
            env=self.env,
            args=args,
            log_path=self.state_dir / "logs" / f"{name}.log",
        )
        service.start()
        self.services[name] = service
        return service

    def stop_services(self) -> None:
        for service in reversed(list(self.services.values())):
            service.stop()

    # -- steps ------------------------------------------------------------

    def start_cluster(self) -> None:
        subprocess.run(
            [sys.executable, str(CLUSTER_SCRIPT), "destroy"], env=self.env, check=True
        )
        subprocess.run(
            [sys.executable, str(CLUSTER_SCRIPT), "start"],
            env=self.env,
            check=True,
            stdout=subprocess.DEVNULL,
        )
        admin = AdminClient(self.settings.admin_config())
        ensure_topics(admin, self.settings.topic_prefix)
        load_coordinators(self.settings.bootstrap_servers)

    def stop_cluster(self) -> None:
        subprocess.run(
            [sys.executable, str(CLUSTER_SCRIPT), "stop"], env=self.env, check=False
        )

    def start_services(self) -> None:
        for name in ("ingest", "monitor", "inference", "drill"):
            self.start_service(name)
        wait_for_port(GRPC_PORT, 120, self.services["inference"])

    def replay(self) -> None:
        transactions = DATA / "online-retail" / "transactions.csv.gz"
        output = self.run_tool(
            "-m", "ingest.replay", "--data", str(transactions), "--as-fast-as-possible"
        )
        self.summary["replay"] = json.loads(output.strip().splitlines()[-1])

    def wait_for_ingest(self, timeout_s: float = 600) -> None:
        """Wait until ingest has consumed everything on the behaviour topic."""
        deadline = time.monotonic() + timeout_s
        while (lag := self.ingest_lag()) != 0:
            self.services["ingest"].check()
            if time.monotonic() > deadline:
                raise TimeoutError(f"ingest still {lag} events behind")
            time.sleep(1.0)

    def ingest_lag(self) -> int | None:
        topic = self.settings.topic(Topic.BEHAVIOUR_EVENTS)
        consumer = Consumer(self.settings.consumer_config(INGEST_GROUP))
        try:
            metadata = consumer.list_topics(topic, timeout=10)
            partitions = [
                TopicPartition(topic, p) for p in metadata.topics[topic].partitions
            ]
            committed = consumer.committed(partitions, timeout=10)
            lag = 0
            for tp in committed:
                _, high = consumer.get_watermark_offsets(tp, timeout=10)
                lag += high - max(tp.offset, 0)
            return lag
        finally:
            consumer.close()

    def count_dead_letters(self) -> None:
        reasons: collections.Counter[str] = collections.Counter()
        for record in self.read_topic(Topic.DEAD_LETTER):
            reasons[decode(DeadLetter, record.value(), record.headers()).reason] += 1
        self.summary["dead_lettered"] = {
            "total": sum(reasons.values()),
            "by_reason": dict(reasons),
        }

    def count_classified(self) -> None:
        """The real data's oddities ingest kept and labelled, from its metrics."""
        url = f"http://127.0.0.1:{METRICS_PORTS['ingest']}/metrics"
        with urllib.request.urlopen(url, timeout=5) as page:
            families = text_string_to_metric_families(page.read().decode())
            self.summary["classified"] = {
                sample.labels["kind"]: int(sample.value)
                for family in families
                if family.name == "recops_ingest_events_classified"
                for sample in family.samples
                if sample.name.endswith("_total")
            }

    def snapshot(self) -> Path:
        output = self.run_tool("-m", "ingest", "snapshot")
        snapshot_dir = Path(output.strip().splitlines()[-1])
        manifest = json.loads((snapshot_dir / "manifest.json").read_text())
        self.summary["snapshot"] = manifest
        return snapshot_dir

    def train(self, snapshot_dir: Path) -> ModelReady:
        self.run_tool("-m", "trainer", "train", "--snapshot", str(snapshot_dir))
        records = list(self.read_topic(Topic.MODEL_READY))
        if not records:
            raise RuntimeError("the trainer published no model-ready event")
        ready = decode(ModelReady, records[-1].value(), records[-1].headers())
        self.summary["model"] = {
            "name": ready.model_name,
            "version": ready.version,
            "size_bytes": ready.size_bytes,
            "sha256": ready.sha256,
            "metrics": dict(sorted(ready.metrics.items())),
        }
        return ready

    def measure_recommend(
        self, version: str, users: list[str], calls: int = 2000
    ) -> None:
        """Wait for inference to serve ``version``; then time Recommend calls."""
        with grpc.insecure_channel(f"127.0.0.1:{GRPC_PORT}") as channel:
            stub = storefront_pb2_grpc.StorefrontStub(channel)
            self.wait_for_model(stub, version, users[0])
            latencies, fallbacks, failures = [], 0, 0
            for i in range(calls):
                request = storefront_pb2.RecommendRequest(
                    user_id=users[i % len(users)], k=10
                )
                started = time.perf_counter()
                try:
                    response = stub.Recommend(request, timeout=2.0)
                except grpc.RpcError:
                    failures += 1
                    continue
                latencies.append(time.perf_counter() - started)
                fallbacks += response.fallback
        cuts = statistics.quantiles(latencies, n=100)
        self.summary["recommend"] = {
            "calls": calls,
            "failed": failures,
            "fallback_answers": fallbacks,
            "latency_p50_ms": round(cuts[49] * 1000, 2),
            "latency_p99_ms": round(cuts[98] * 1000, 2),
            "model_version": version,
        }

    def wait_for_model(
        self, stub: storefront_pb2_grpc.StorefrontStub, version: str, user: str
    ) -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            self.services["inference"].check()
            response = stub.Recommend(
                storefront_pb2.RecommendRequest(user_id=user, k=10), timeout=5
            )
            if response.model_version == version:
                return
            time.sleep(0.5)
        raise TimeoutError(f"inference did not take model {version} within 120s")

    def collect_alerts(self) -> None:
        alerts = [
            decode(Alert, r.value(), r.headers()) for r in self.read_topic(Topic.ALERTS)
        ]
        self.summary["alerts"] = [
            {
                "rule": alert.rule,
                "state": AlertState.Name(alert.state)
                .removeprefix("ALERT_STATE_")
                .lower(),
                "value": alert.value,
                "threshold": alert.threshold,
                "at": alert.at.ToJsonString(),
            }
            for alert in alerts
        ]

    def run_drill(self) -> None:
        output = self.run_tool(
            "-m",
            "drill",
            "run",
            "kafka-node-kill",
            "--target",
            "kafka-node-1",
            timeout_s=600,
        )
        records = list(self.read_topic(Topic.DRILL_RESULTS))
        if not records:
            raise RuntimeError(f"the drill published no result; it printed: {output}")
        result = decode(DrillResult, records[-1].value(), records[-1].headers())
        measured = dict(result.measurements)
        self.summary["drill"] = {
            "experiment": result.experiment,
            "target": result.target,
            "verdict": DrillVerdict.Name(result.verdict)
            .removeprefix("DRILL_VERDICT_")
            .lower(),
            "events_acknowledged": result.events_acknowledged,
            "events_ingested": result.events_ingested,
            "events_lost": result.events_lost,
            "events_duplicated": result.events_duplicated,
            "requests_total": result.requests_total,
            "requests_failed": result.requests_failed,
            "seconds_to_recover": round(result.seconds_to_recover, 2),
            "node_down_seconds": round(measured.get("node_down_seconds", 0.0), 1),
            "writes_stalled_seconds": round(
                measured.get("events_longest_gap_seconds", 0.0), 1
            ),
            "recommend_p99_ms_during_fault": round(
                measured.get("requests_latency_p99_seconds_during_fault", 0.0) * 1000,
                2,
            ),
            "report": result.report_uri,
        }

    def read_topic(self, topic: Topic) -> Iterator[object]:
        """Every record of a topic, from the beginning to its current end."""
        consumer = Consumer(
            self.settings.consumer_config(
                f"demo-reader-{time.time_ns()}", **{"enable.partition.eof": True}
            )
        )
        name = self.settings.topic(topic)
        metadata = consumer.list_topics(name, timeout=10)
        partitions = [
            TopicPartition(name, p, 0) for p in metadata.topics[name].partitions
        ]
        ends = {
            tp.partition: consumer.get_watermark_offsets(tp, timeout=10)[1]
            for tp in partitions
        }
        consumer.assign(partitions)
        remaining = {p for p, end in ends.items() if end > 0}
        try:
            while remaining:
                record = consumer.poll(5.0)
                if record is None:
                    break
                if record.error():
                    if record.error().code() == KafkaError._PARTITION_EOF:
                        remaining.discard(record.partition())
                    continue
                yield record
        finally:
            consumer.close()


def known_users(snapshot_dir: Path, limit: int = 200) -> list[str]:
    """Customers who bought in the test window: the ones the demo asks about."""
    table = pq.read_table(
        snapshot_dir / "test.parquet", columns=["user_id", "event_type"]
    )
    users = [
        user
        for user, kind in zip(
            table["user_id"].to_pylist(), table["event_type"].to_pylist(), strict=True
        )
        if user and kind == "purchase"
    ]
    return list(dict.fromkeys(users))[:limit]


METRICS_PORTS = {"ingest": 9101, "inference": 9103, "monitor": 9104, "drill": 9105}


def scrape_metrics() -> dict[str, object]:
    """Whether each service's /metrics answers, and how many samples it has."""
    scraped: dict[str, object] = {}
    for service, port in METRICS_PORTS.items():
        try:
            with urllib.request.urlopen(
                f"http://127.0.0.1:{port}/metrics", timeout=5
            ) as page:
                lines = page.read().decode().splitlines()
        except OSError as exc:
            scraped[service] = {"up": False, "error": str(exc)}
            continue
        samples = [line for line in lines if line and not line.startswith("#")]
        scraped[service] = {"up": True, "samples": len(samples)}
    return scraped


DEMO_METRICS = ("ndcg@10", "hit_rate@10", "recall@10", "new_items.ndcg@10")


def model_beside_best_baseline(metrics: dict[str, float], name: str) -> str:
    """``0.3012  0.2896 (repeat)``: the model, then the best baseline and its name."""
    baselines = {
        key.split(".")[1]: value
        for key, value in metrics.items()
        if key.startswith("baseline.") and key.split(".", 2)[2] == name
    }
    if not baselines:
        return f"{metrics.get(name, float('nan')):.4f}"
    best = max(baselines, key=lambda baseline: baselines[baseline])
    return f"{metrics[name]:.4f}  {baselines[best]:.4f} ({best})"


def summary_lines(summary: dict[str, Any]) -> list[str]:
    """The summary as lines a person reads at the end of the demo."""
    replay, dead = summary["replay"], summary["dead_lettered"]
    model, recommend, drill = summary["model"], summary["recommend"], summary["drill"]
    rows = [
        ("events replayed", f"{replay['events_acknowledged']:,} acknowledged"),
        ("events ingested", f"{summary['events_ingested']:,}"),
        ("dead-lettered", f"{dead['total']:,} {dead['by_reason']}"),
        ("kept and labelled", f"{summary['classified']}"),
        ("snapshot rows", f"{summary['snapshot'].get('rows')}"),
        ("model", f"{model['name']} {model['version']}"),
        ("  on the test split", "model   best baseline"),
        *(
            (f"  {name}", model_beside_best_baseline(model["metrics"], name))
            for name in DEMO_METRICS
        ),
        (
            "Recommend latency",
            f"p50 {recommend['latency_p50_ms']} ms, p99 {recommend['latency_p99_ms']}"
            f" ms, {recommend['calls']} calls, {recommend['failed']} failed",
        ),
        ("alerts", ", ".join(f"{a['rule']} {a['state']}" for a in summary["alerts"])),
        ("drill", f"{drill['experiment']} {drill['target']}: {drill['verdict']}"),
        (
            "  events",
            f"{drill['events_acknowledged']} acknowledged, {drill['events_ingested']}"
            f" ingested, {drill['events_lost']} lost,"
            f" {drill['events_duplicated']} duplicated",
        ),
        (
            "  gRPC",
            f"{drill['requests_total']} calls, {drill['requests_failed']} failed,"
            f" healthy again {drill['seconds_to_recover']} s after the restart",
        ),
        (
            "  during the fault",
            f"node down {drill['node_down_seconds']} s, writes stalled up to"
            f" {drill['writes_stalled_seconds']} s, Recommend p99"
            f" {drill['recommend_p99_ms_during_fault']} ms",
        ),
        ("total", f"{summary['seconds_total']} s"),
    ]
    return ["recops demo summary", *(f"{label:<40} {text}" for label, text in rows)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--port-base",
        type=int,
        default=int(os.environ.get("RECOPS_KAFKA_PORT_BASE", "19092")),
    )
    parser.add_argument("--state-dir", type=Path, default=REPO / ".state" / "demo")
    parser.add_argument("--reports-dir", type=Path, default=REPO / "reports")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    args.reports_dir.mkdir(parents=True, exist_ok=True)

    demo = Demo(
        state_dir=args.state_dir.resolve(),
        port_base=args.port_base,
        reports_dir=args.reports_dir.resolve(),
    )
    started = time.monotonic()
    with ExitStack() as cleanup:
        with demo.step("start a fresh three-node Kafka cluster"):
            demo.start_cluster()
        cleanup.callback(demo.stop_cluster)
        with demo.step("start ingest, monitor, inference and drill"):
            cleanup.callback(demo.stop_services)
            demo.start_services()
        with demo.step("replay the shop's transactions"):
            demo.replay()
        with demo.step("wait for ingest to catch up"):
            demo.wait_for_ingest()
            demo.count_dead_letters()
            demo.count_classified()
        with demo.step("cut the training snapshot"):
            snapshot_dir = demo.snapshot()
            rows = demo.summary["snapshot"]["rows"]
            demo.summary["events_ingested"] = sum(rows.values())
        with demo.step("train, evaluate and publish the recommender"):
            ready = demo.train(snapshot_dir)
        with demo.step("serve Recommend and measure latency"):
            demo.measure_recommend(ready.version, known_users(snapshot_dir))
        with demo.step("drill: kill -9 a broker while events flow"):
            demo.run_drill()
        demo.summary["metrics_endpoints"] = scrape_metrics()
        demo.collect_alerts()
    demo.summary["seconds_total"] = round(time.monotonic() - started, 1)
    demo.summary["step_seconds"] = demo.step_seconds

    out = args.reports_dir / "demo-summary.json"
    out.write_text(json.dumps(demo.summary, indent=2, default=str))
    print("\n" + "\n".join(summary_lines(demo.summary)))
    print(f"\nwritten to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
