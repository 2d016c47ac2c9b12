"""Ingest throughput beside a bare consume loop, on one cluster and one replay.

Starts a three-node cluster of its own (ports ``RECOPS_BENCH_KAFKA_PORT_BASE``,
default 39092), replays the first ``--events`` lines of the real retail data
into a fresh raw topic, then reads that same topic twice, each time in a
child process of its own so that peak memory is that reader's alone:

- ``bare``: a confluent-kafka consumer that only decodes each record's bytes
  into a BehaviourEvent, the floor any consumer pays;
- ``passthrough``: the same consumer copying each record, unread, to another
  topic in one transaction per batch with its offsets, the floor any
  processor pays that writes its results exactly once;
- ``ingest``: the ingest service as it runs in production: validation,
  deduplication, shopper profiles, and one transaction per batch holding the
  ingested events, dead letters, profile changes and offsets.

Each round uses its own topics, so ingest starts from empty profiles as it
would on a new deployment. The figures go to ``reports/bench/ingest.json``:

    python bench/ingest_throughput.py [--events N] [--rounds N] [--out PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic
from prometheus_client import CollectorRegistry

from eventbus import KafkaSettings, Topic, ensure_topics
from eventbus.contracts import BehaviourEvent
from eventbus.topics import load_coordinators
from ingest.metrics import IngestMetrics
from ingest.replay import DEFAULT_DATA, Replayer, read_lines, replay_producer
from ingest.service import TRANSACTION_TIMEOUT_MS, IngestService
from ingest.settings import IngestSettings

REPO = Path(__file__).resolve().parent.parent
CLUSTER = REPO / "deploy" / "kafka" / "cluster.py"
PORT_BASE = int(os.environ.get("RECOPS_BENCH_KAFKA_PORT_BASE", "39092"))
STATE_DIR = REPO / ".state" / "bench-ingest"
GOAL_SHARE_OF_BARE = 0.5
PASSTHROUGH_TOPIC = "bench-passthrough"
READ_TIMEOUT_SECONDS = 600.0


def main() -> int:
    args = _parse()
    cluster = {
        **os.environ,
        "RECOPS_KAFKA_PORT_BASE": str(PORT_BASE),
        "RECOPS_STATE_DIR": str(STATE_DIR),
    }
    bootstrap = ",".join(f"127.0.0.1:{PORT_BASE + n}" for n in range(3))
    subprocess.run([sys.executable, str(CLUSTER), "start"], env=cluster, check=True)
    try:
        rounds = [_round(bootstrap, args.events) for _ in range(args.rounds)]
    finally:
        subprocess.run([sys.executable, str(CLUSTER), "destroy"], env=cluster)

    result = _summary(rounds, args.events)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result["summary"], indent=2))
    print(f"written to {args.out}")
    return 0


def _round(bootstrap: str, events: int) -> dict[str, object]:
    """Replay into fresh topics, then read them with each reader in turn."""
    kafka = KafkaSettings(
        bootstrap_servers=bootstrap,
        topic_prefix=f"bench{uuid.uuid4().hex[:6]}.",
        client_id="recops-bench",
    )
    admin = AdminClient(kafka.admin_config())
    ensure_topics(admin, kafka.topic_prefix)
    copies = NewTopic(
        kafka.topic_prefix + PASSTHROUGH_TOPIC,
        num_partitions=6,
        replication_factor=3,
        config={"min.insync.replicas": "2"},
    )
    admin.create_topics([copies])[copies.topic].result()
    load_coordinators(bootstrap)
    replayer = Replayer(replay_producer(kafka), kafka.topic(Topic.BEHAVIOUR_EVENTS))
    replayed = replayer.replay(read_lines(DEFAULT_DATA, limit=events))
    if replayed.events_acknowledged != events:
        raise RuntimeError(f"only {replayed.events_acknowledged} of {events} sent")
    return {
        "topic_prefix": kafka.topic_prefix,
        "replay_events_per_second": round(events / replayed.seconds, 1),
        "bare": _reader_process("bare", kafka, events),
        "passthrough": _reader_process("passthrough", kafka, events),
        "ingest": _reader_process("ingest", kafka, events),
    }


def _reader_process(reader: str, kafka: KafkaSettings, events: int) -> dict[str, float]:
    """Run one reader in a child process and return what it measured."""
    command = [sys.executable, __file__, "--reader", reader, "--events", str(events)]
    env = {
        **os.environ,
        "RECOPS_KAFKA_BOOTSTRAP": kafka.bootstrap_servers,
        "RECOPS_TOPIC_PREFIX": kafka.topic_prefix,
    }
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"the {reader} reader failed:\n{done.stderr[-3000:]}")
    figures: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return figures


def _raw_topic_reader(kafka: KafkaSettings, group: str) -> tuple[Consumer, list[float]]:
    """A consumer of the raw topic, and the list its assignment time goes to."""
    consumer = Consumer(kafka.consumer_config(kafka.topic_prefix + group))
    assigned: list[float] = []
    consumer.subscribe(
        [kafka.topic(Topic.BEHAVIOUR_EVENTS)],
        on_assign=lambda *_: assigned.append(time.perf_counter()),
    )
    return consumer, assigned


def read_bare(kafka: KafkaSettings, events: int) -> float:
    """Seconds a plain consumer takes to read and decode ``events`` records.

    Timed from the group's assignment, as ingest is, so that joining the
    group counts for neither.
    """
    consumer, assigned = _raw_topic_reader(kafka, "bench-bare")
    decoded = 0
    deadline = time.monotonic() + READ_TIMEOUT_SECONDS
    try:
        while decoded < events:
            _check(deadline, decoded, events)
            for record in consumer.consume(num_messages=5_000, timeout=0.2):
                if record.error() is None:
                    BehaviourEvent.FromString(record.value() or b"")
                    decoded += 1
        return time.perf_counter() - assigned[0]
    finally:
        consumer.close()


def read_passthrough(kafka: KafkaSettings, events: int) -> float:
    """Seconds to copy ``events`` records to another topic, a transaction a batch."""
    producer = Producer(
        kafka.producer_config(
            **{
                "transactional.id": f"{kafka.topic_prefix}bench-passthrough",
                "transaction.timeout.ms": TRANSACTION_TIMEOUT_MS,
                "message.timeout.ms": TRANSACTION_TIMEOUT_MS,
                "linger.ms": 5,
            }
        )
    )
    producer.init_transactions(30)
    consumer, assigned = _raw_topic_reader(kafka, "bench-passthrough")
    copied = 0
    deadline = time.monotonic() + READ_TIMEOUT_SECONDS
    try:
        while copied < events:
            _check(deadline, copied, events)
            batch = consumer.consume(num_messages=5_000, timeout=0.2)
            records = [record for record in batch if record.error() is None]
            if not records:
                continue
            producer.begin_transaction()
            for record in records:
                producer.produce(
                    kafka.topic_prefix + PASSTHROUGH_TOPIC,
                    value=record.value(),
                    key=record.key(),
                )
            producer.send_offsets_to_transaction(
                consumer.position(consumer.assignment()),
                consumer.consumer_group_metadata(),
                30,
            )
            producer.commit_transaction(30)
            copied += len(records)
        return time.perf_counter() - assigned[0]
    finally:
        consumer.close()


def read_ingest(kafka: KafkaSettings, events: int) -> float:
    """Seconds the ingest service takes from its assignment to its last commit."""
    settings = IngestSettings(
        kafka=kafka,
        group_id=f"{kafka.topic_prefix}recops-ingest",
        instance_id=f"{kafka.topic_prefix}recops-ingest-0",
        metrics_port=0,
    )
    service = IngestService.connect(settings, IngestMetrics(CollectorRegistry()))
    failure: list[BaseException] = []
    thread = threading.Thread(target=_run_catching(service.run, failure))
    thread.start()
    assigned: float | None = None
    deadline = time.monotonic() + READ_TIMEOUT_SECONDS
    try:
        while service.totals.consumed < events and not failure:
            _check(deadline, service.totals.consumed, events)
            if assigned is None and service.health.partitions():
                assigned = time.perf_counter()
            time.sleep(0.002)
        return time.perf_counter() - (assigned or time.perf_counter())
    finally:
        service.stop()
        thread.join()
        if failure:
            raise failure[0]


def _run_catching(
    run: Callable[[], None], failure: list[BaseException]
) -> Callable[[], None]:
    def runner() -> None:
        try:
            run()
        except BaseException as exc:
            failure.append(exc)

    return runner


def _check(deadline: float, done: int, events: int) -> None:
    if time.monotonic() > deadline:
        raise TimeoutError(f"read {done} of {events} records in time")


def _summary(rounds: list[dict[str, object]], events: int) -> dict[str, object]:
    def median(reader: str, figure: str) -> float:
        values = [r[reader][figure] for r in rounds]  # type: ignore[index]
        return round(statistics.median(values), 1)

    bare = median("bare", "events_per_second")
    passthrough = median("passthrough", "events_per_second")
    ingest = median("ingest", "events_per_second")
    share = round(ingest / bare, 3)
    return {
        "benchmark": "ingest",
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "data": str(DEFAULT_DATA.relative_to(REPO.parent)),
        "events_per_round": events,
        "rounds": rounds,
        "summary": {
            "bare_events_per_second": bare,
            "passthrough_events_per_second": passthrough,
            "ingest_events_per_second": ingest,
            "ingest_share_of_bare": share,
            "ingest_share_of_passthrough": round(ingest / passthrough, 3),
            "goal_share_of_bare": GOAL_SHARE_OF_BARE,
            "goal_met": share >= GOAL_SHARE_OF_BARE,
            "bare_peak_rss_mib": median("bare", "peak_rss_mib"),
            "passthrough_peak_rss_mib": median("passthrough", "peak_rss_mib"),
            "ingest_peak_rss_mib": median("ingest", "peak_rss_mib"),
        },
    }


def _reader_main(reader: str, events: int) -> int:
    kafka = KafkaSettings.from_env(client_id=f"recops-bench-{reader}")
    read = {
        "bare": read_bare,
        "passthrough": read_passthrough,
        "ingest": read_ingest,
    }[reader]
    seconds = read(kafka, events)
    peak_kib = _peak_resident_kib()
    figures = {
        "events": events,
        "seconds": round(seconds, 3),
        "events_per_second": round(events / seconds, 1),
        "peak_rss_mib": round(peak_kib / 1024, 1),
    }
    print(json.dumps(figures), flush=True)
    return 0


def _peak_resident_kib() -> int:
    """This process's peak resident memory since it was executed.

    Read from VmHWM, not getrusage: Linux carries ru_maxrss across execve,
    so a child would report the larger parent's peak.
    """
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise RuntimeError("/proc/self/status has no VmHWM line")


def _parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python bench/ingest_throughput.py")
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument(
        "--out", type=Path, default=REPO / "reports" / "bench" / "ingest.json"
    )
    parser.add_argument(
        "--reader", choices=["bare", "passthrough", "ingest"], help=argparse.SUPPRESS
    )
    return parser.parse_args()


if __name__ == "__main__":
    parsed = _parse()
    if parsed.reader:
        sys.exit(_reader_main(parsed.reader, parsed.events))
    sys.exit(main())
