"""The ingest loop, the replay and the snapshot against the real cluster."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pyarrow.parquet as pq
from confluent_kafka import KafkaError, Message, Producer
from prometheus_client import CollectorRegistry

from eventbus import ContentType, KafkaSettings, Topic, encode
from eventbus.contracts import BehaviourEvent, BehaviourType, DeadLetter
from ingest.metrics import IngestMetrics
from ingest.replay import DEFAULT_DATA, Replayer, read_lines, replay_producer
from ingest.service import IngestService
from ingest.settings import IngestSettings
from ingest.snapshot import read_to_end
from tests.conftest import REPO, LocalCluster

Lines = Iterator[tuple[int, list[str]]]


def ingest_settings(kafka: KafkaSettings) -> IngestSettings:
    return IngestSettings(
        kafka=kafka,
        group_id=f"{kafka.topic_prefix}recops-ingest",
        instance_id=f"{kafka.topic_prefix}recops-ingest-0",
        metrics_port=0,
        batch_max_events=2_000,
    )


class RunningIngest:
    """The real ingest loop in a thread, stopped on leaving the block."""

    def __init__(self, kafka: KafkaSettings) -> None:
        self.registry = CollectorRegistry()
        self.service = IngestService.connect(
            ingest_settings(kafka), IngestMetrics(self.registry)
        )
        self.failure: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            self.service.run()
        except BaseException as exc:
            self.failure = exc

    def wait_for_consumed(self, count: int, timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        while self.service.totals.consumed < count:
            assert self.failure is None
            assert time.monotonic() < deadline, self.service.totals
            time.sleep(0.2)

    def counted(self, counter: str, label: str) -> dict[str, float]:
        """A labelled counter's totals, by the value of ``label``."""
        return {
            sample.labels[label]: sample.value
            for metric in self.registry.collect()
            if metric.name == counter
            for sample in metric.samples
            if sample.name.endswith("_total")
        }

    def __enter__(self) -> RunningIngest:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.service.stop()
        self.thread.join(timeout=30)
        assert not self.thread.is_alive()
        assert self.failure is None


def read_all(kafka: KafkaSettings, topic: Topic) -> list[Message]:
    records: list[Message] = []
    read_to_end(kafka, kafka.topic(topic), records.append, timeout_seconds=60)
    return records


def ingested_ids(kafka: KafkaSettings) -> list[str]:
    records = read_all(kafka, Topic.INGESTED_EVENTS)
    return [BehaviourEvent.FromString(r.value() or b"").event_id for r in records]


def dead_letters(kafka: KafkaSettings) -> list[DeadLetter]:
    records = read_all(kafka, Topic.DEAD_LETTER)
    return [DeadLetter.FromString(r.value() or b"") for r in records]


def refused_ids(kafka: KafkaSettings) -> list[str]:
    letters = dead_letters(kafka)
    return [BehaviourEvent.FromString(d.original_value).event_id for d in letters]


def replay(kafka: KafkaSettings, lines: Lines) -> Replayer:
    replayer = Replayer(
        replay_producer(kafka),
        kafka.topic(Topic.BEHAVIOUR_EVENTS),
        keep_acknowledged_ids=True,
    )
    replayer.replay(lines)
    return replayer


def assert_each_acknowledged_event_came_out_once(
    kafka: KafkaSettings, acknowledged: set[str]
) -> None:
    accepted, refused = ingested_ids(kafka), refused_ids(kafka)
    assert len(accepted) == len(set(accepted))
    assert len(refused) == len(set(refused))
    assert not set(accepted) & set(refused)
    assert set(accepted) | set(refused) == acknowledged


def a_purchase() -> BehaviourEvent:
    event = BehaviourEvent(
        event_id="536365-2",
        type=BehaviourType.BEHAVIOUR_TYPE_PURCHASE,
        user_id="17850",
        item_id="85123A",
        quantity=6,
        price=2.55,
        session_id="536365",
    )
    event.event_time.FromSeconds(1_291_191_960)
    return event


def changed(
    event: BehaviourEvent, edit: Callable[[BehaviourEvent], None]
) -> BehaviourEvent:
    copy = BehaviourEvent()
    copy.CopyFrom(event)
    edit(copy)
    return copy


def bad_records() -> dict[str, tuple[bytes, list[tuple[str, bytes]]]]:
    """One record of each kind ingest must refuse, by the reason it must give."""
    valid = a_purchase()
    whole, protobuf = encode(valid)
    json_headers = [("content-type", ContentType.JSON.value.encode())]
    ms_time = changed(valid, lambda e: setattr(e.event_time, "seconds", 1 << 40))
    future = changed(valid, lambda e: e.event_time.FromSeconds(4_102_444_800))
    ancient = changed(valid, lambda e: e.event_time.FromSeconds(631_152_000))
    large = changed(valid, lambda e: setattr(e, "item_description", "x" * 70_000))
    return {
        "invalid_utf8": (b'{"eventId": "\xc3\x28"}', json_headers),
        "empty_payload": (b"", protobuf),
        "invalid_protobuf": (whole[:-3], protobuf),
        "invalid_json": (b'{"eventId": "536365-2",', json_headers),
        "wrong_field_type": (b'{"eventId": "x", "quantity": "six"}', json_headers),
        "unknown_field": (b'{"eventId": "x", "basket": [1]}', json_headers),
        "unknown_type": encode(changed(valid, lambda e: setattr(e, "type", 42))),
        "missing_event_id": encode(
            changed(valid, lambda e: e.ClearField("event_id")), ContentType.JSON
        ),
        "missing_item_id": encode(changed(valid, lambda e: e.ClearField("item_id"))),
        "missing_user_and_session": encode(
            changed(
                valid, lambda e: (e.ClearField("user_id"), e.ClearField("session_id"))
            )
        ),
        "too_large": encode(large),
        "event_time_wrong_unit": encode(ms_time),
        "invalid_event_time": encode(
            changed(valid, lambda e: setattr(e.event_time, "seconds", 10**17))
        ),
        "event_time_in_future": encode(future),
        "event_time_too_old": encode(ancient),
    }


def test_each_kind_of_bad_input_is_dead_lettered_with_its_reason_and_origin(
    kafka_settings: KafkaSettings,
) -> None:
    sent = bad_records()
    valid, protobuf = encode(a_purchase())
    where: dict[bytes, tuple[int | None, int | None]] = {}

    def delivered(error: KafkaError | None, message: Message) -> None:
        assert error is None
        where[message.value() or b""] = (message.partition(), message.offset())

    producer = Producer(kafka_settings.producer_config())
    raw_topic = kafka_settings.topic(Topic.BEHAVIOUR_EVENTS)
    for value, headers in [*sent.values(), (valid, protobuf)]:
        producer.produce(
            raw_topic, value=value, key=b"k", headers=headers, on_delivery=delivered
        )
    assert producer.flush(30) == 0

    with RunningIngest(kafka_settings) as ingest:
        ingest.wait_for_consumed(len(sent) + 1)
    counted = ingest.counted("recops_ingest_events_dead_lettered", "reason")

    by_reason = {letter.reason: letter for letter in dead_letters(kafka_settings)}
    assert set(by_reason) == set(sent)
    assert counted == dict.fromkeys(sent, 1.0)
    for reason, (value, _) in sent.items():
        letter = by_reason[reason]
        assert letter.original_value == value
        assert letter.original_key == b"k"
        assert letter.source_topic == raw_topic
        assert (letter.source_partition, letter.source_offset) == where[value]
        assert letter.detail
    (ingested,) = read_all(kafka_settings, Topic.INGESTED_EVENTS)
    assert BehaviourEvent.FromString(ingested.value() or b"") == a_purchase()
    assert dict(ingested.headers() or [])["item-kind"] == b"product"


def test_every_acknowledged_event_is_ingested_once_across_a_broker_kill(
    kafka_cluster: LocalCluster, kafka_settings: KafkaSettings
) -> None:
    def lines_killing_a_node_midway() -> Lines:
        for count, line in enumerate(read_lines(DEFAULT_DATA, limit=20_000)):
            if count == 5_000:
                kafka_cluster.kill_node(1)
            if count > 5_000 and count % 100 == 0:
                time.sleep(0.02)  # keep sending while the cluster recovers
            yield line

    try:
        with RunningIngest(kafka_settings) as ingest:
            replayer = replay(kafka_settings, lines_killing_a_node_midway())
            ingest.wait_for_consumed(len(replayer.acknowledged_ids))
        acknowledged = set(replayer.acknowledged_ids)
        assert replayer.summary.events_acknowledged == 20_000 == len(acknowledged)
        assert_each_acknowledged_event_came_out_once(kafka_settings, acknowledged)
    finally:
        kafka_cluster.start_node(1)
        kafka_cluster.wait_until_whole()


def service_env(kafka: KafkaSettings, state_dir: Path) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(
            str(REPO / part) for part in ("", "services", "build/gen")
        ),
        "RECOPS_KAFKA_BOOTSTRAP": kafka.bootstrap_servers,
        "RECOPS_TOPIC_PREFIX": kafka.topic_prefix,
        "RECOPS_STATE_DIR": str(state_dir),
        "RECOPS_INGEST_METRICS_PORT": "0",
        "RECOPS_INGEST_GROUP_ID": f"{kafka.topic_prefix}recops-ingest",
    }


def start_ingest(
    env: dict[str, str], log: Path, batch_max_events: int
) -> subprocess.Popen[bytes]:
    with log.open("ab") as stream:
        return subprocess.Popen(
            [sys.executable, "-m", "ingest"],
            env={**env, "RECOPS_INGEST_BATCH_MAX_EVENTS": str(batch_max_events)},
            stderr=stream,
            cwd=REPO,
        )


def test_killing_the_ingest_process_loses_and_duplicates_nothing(
    kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    env = service_env(kafka_settings, tmp_path)
    log = tmp_path / "ingest.log"
    replayer = replay(kafka_settings, read_lines(DEFAULT_DATA, limit=30_000))
    acknowledged = set(replayer.acknowledged_ids)

    first = start_ingest(env, log, batch_max_events=200)
    try:
        deadline = time.monotonic() + 30
        while not read_all(kafka_settings, Topic.INGESTED_EVENTS):
            assert time.monotonic() < deadline and first.poll() is None
            time.sleep(0.1)
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(10)
    partly = len(ingested_ids(kafka_settings))

    second = start_ingest(env, log, batch_max_events=2_000)
    try:
        deadline = time.monotonic() + 60
        while len(ingested_ids(kafka_settings)) + len(
            refused_ids(kafka_settings)
        ) < len(acknowledged):
            assert time.monotonic() < deadline and second.poll() is None
            time.sleep(0.5)
    finally:
        second.send_signal(signal.SIGTERM)
        assert second.wait(30) == 0, log.read_text()[-3000:]

    assert 0 < partly < len(acknowledged)
    assert_each_acknowledged_event_came_out_once(kafka_settings, acknowledged)


def test_a_snapshot_of_real_ingested_events_splits_seven_two_one_by_time(
    kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    replayer = replay(kafka_settings, read_lines(DEFAULT_DATA, limit=5_000))
    with RunningIngest(kafka_settings) as ingest:
        ingest.wait_for_consumed(replayer.summary.events_acknowledged)
    accepted = len(set(ingested_ids(kafka_settings)))

    def snapshot() -> Path:
        result = subprocess.run(
            [sys.executable, "-m", "ingest", "snapshot"],
            env=service_env(kafka_settings, tmp_path),
            capture_output=True,
            text=True,
            check=True,
            cwd=REPO,
        )
        return Path(result.stdout.strip().splitlines()[-1])

    directory = snapshot()

    manifest = json.loads((directory / "manifest.json").read_text())
    tables = {
        name: pq.read_table(directory / f"{name}.parquet").to_pydict()
        for name in ("train", "validation", "test")
    }
    rows = {name: len(table["event_id"]) for name, table in tables.items()}
    assert manifest["rows"] == rows
    assert sum(rows.values()) == accepted
    # Whole minutes stay on one side, so each cut is at or just before its share.
    assert rows["train"] <= accepted * 7 // 10 < rows["train"] + rows["validation"]
    validation_and_train = rows["train"] + rows["validation"]
    assert validation_and_train <= accepted * 9 // 10 < accepted
    assert max(tables["train"]["event_time"]) < min(tables["validation"]["event_time"])
    assert max(tables["validation"]["event_time"]) < min(tables["test"]["event_time"])
    assert snapshot() == directory


def oddity_lines(per_kind: int) -> Lines:
    """Real lines with each oddity of the shop's data, and plain ones, in order."""
    wanted = {
        "guest": lambda row: not row[6],
        "zero_price": lambda row: float(row[5]) == 0 and int(row[3]) > 0,
        "non_product": lambda row: row[1] in ("POST", "DOT", "M", "C2", "AMAZONFEE"),
        "return": lambda row: row[0].startswith("C"),
        "plain": lambda row: bool(row[6]) and float(row[5]) > 0,
    }
    found = dict.fromkeys(wanted, 0)
    for number, row in read_lines(DEFAULT_DATA):
        kinds = [kind for kind, test in wanted.items() if test(row)]
        if any(found[kind] < per_kind for kind in kinds):
            for kind in kinds:
                found[kind] += 1
            yield number, row
        if all(count >= per_kind for count in found.values()):
            return


def test_the_real_datas_oddities_are_ingested_and_counted_not_dropped(
    kafka_settings: KafkaSettings,
) -> None:
    replayer = replay(kafka_settings, oddity_lines(per_kind=40))
    acknowledged = set(replayer.acknowledged_ids)
    with RunningIngest(kafka_settings) as ingest:
        ingest.wait_for_consumed(len(acknowledged))
    counted = ingest.counted("recops_ingest_events_classified", "kind")

    assert_each_acknowledged_event_came_out_once(kafka_settings, acknowledged)
    records = read_all(kafka_settings, Topic.INGESTED_EVENTS)
    events = [BehaviourEvent.FromString(r.value() or b"") for r in records]
    kinds = [dict(r.headers() or [])["item-kind"] for r in records]
    seen = {
        "guest": sum(not e.user_id for e in events),
        "zero_price": sum(e.price == 0 for e in events),
        "non_product": kinds.count(b"non_product"),
        "return": sum(e.type == BehaviourType.BEHAVIOUR_TYPE_RETURN for e in events),
    }
    assert all(count >= 20 for count in seen.values()), seen
    assert counted == seen
