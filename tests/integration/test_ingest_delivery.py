"""Ingest processes through restarts, resends, scaling and broker trouble.

Each test starts ``python -m ingest`` as an operator would, replays real
retail events, hurts something, and then checks the outputs: every
acknowledged event ingested or dead-lettered exactly once, and the shopper
profiles on the profiles topic counting each ingested event once.
"""

from __future__ import annotations

import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import Producer
from prometheus_client.parser import text_string_to_metric_families

from eventbus import KafkaSettings, Topic
from eventbus.contracts import BehaviourEvent, UserProfile
from ingest.replay import DEFAULT_DATA, Replayer, read_lines, replay_producer
from tests.conftest import LocalCluster
from tests.integration.service_processes import ServiceProcess, free_port, service_env
from tests.integration.test_ingest import (
    assert_each_acknowledged_event_came_out_once,
    ingested_ids,
    read_all,
    refused_ids,
    replay,
)


class IngestProcess:
    """One ``python -m ingest`` replica with its metrics and health port."""

    def __init__(
        self, kafka: KafkaSettings, state_dir: Path, instance: int = 0, **settings: str
    ) -> None:
        self.port = free_port()
        env = service_env(
            RECOPS_KAFKA_BOOTSTRAP=kafka.bootstrap_servers,
            RECOPS_TOPIC_PREFIX=kafka.topic_prefix,
            RECOPS_STATE_DIR=str(state_dir),
            RECOPS_INGEST_GROUP_ID=f"{kafka.topic_prefix}recops-ingest",
            RECOPS_INGEST_INSTANCE_ID=f"{kafka.topic_prefix}recops-ingest-{instance}",
            RECOPS_INGEST_METRICS_PORT=str(self.port),
            **{
                f"RECOPS_INGEST_{name.upper()}": value
                for name, value in settings.items()
            },
        )
        self.service = ServiceProcess("ingest", env)

    def health(self, check: str = "readyz") -> tuple[int, str]:
        url = f"http://127.0.0.1:{self.port}/{check}"
        try:
            with urllib.request.urlopen(url, timeout=5) as answer:
                return answer.status, answer.read().decode()
        except urllib.error.HTTPError as refused:
            return refused.code, refused.read().decode()
        except OSError as exc:
            return 0, str(exc)

    def wait_until(self, status: int, timeout_s: float = 90, saying: str = "") -> str:
        """Wait for /readyz to answer ``status`` (and ``saying``); return its words."""
        deadline = time.monotonic() + timeout_s
        answer = (0, "")
        while time.monotonic() < deadline:
            assert self.service.process.poll() is None, "ingest exited"
            answer = self.health()
            if answer[0] == status and saying in answer[1]:
                return answer[1]
            time.sleep(0.3)
        raise AssertionError(f"/readyz never answered {status}; last {answer}")

    def wait_for_events(self, timeout_s: float) -> float:
        """Wait until this replica has consumed events; return how many."""
        deadline = time.monotonic() + timeout_s
        while (consumed := self.metric("recops_ingest_events_consumed_total")) == 0:
            assert time.monotonic() < deadline, "this replica consumed nothing"
            time.sleep(0.3)
        return consumed

    def metric(self, name: str) -> float:
        with urllib.request.urlopen(
            f"http://127.0.0.1:{self.port}/metrics", timeout=5
        ) as answer:
            text = answer.read().decode()
        return sum(
            sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
            if sample.name == name
        )

    def __enter__(self) -> IngestProcess:
        return self

    def __exit__(self, *_: object) -> None:
        self.service.close()


def latest_profiles(kafka: KafkaSettings) -> dict[bytes, UserProfile]:
    return {
        record.key() or b"": UserProfile.FromString(record.value() or b"")
        for record in read_all(kafka, Topic.USER_PROFILES)
    }


def wait_for_outputs(kafka: KafkaSettings, expected: int, timeout_s: float) -> float:
    """Wait until ingested plus dead-lettered events reach ``expected``."""
    started = time.monotonic()
    while len(ingested_ids(kafka)) + len(refused_ids(kafka)) < expected:
        assert time.monotonic() - started < timeout_s, "ingest did not catch up"
        time.sleep(1.0)
    return time.monotonic() - started


def assert_profiles_count_each_ingested_event_once(kafka: KafkaSettings) -> None:
    events = [
        BehaviourEvent.FromString(record.value() or b"")
        for record in read_all(kafka, Topic.INGESTED_EVENTS)
    ]
    profiles = latest_profiles(kafka)
    assert sum(profile.events_total for profile in profiles.values()) == len(events)
    shoppers = {event.user_id or f"session:{event.session_id}" for event in events}
    assert {key.decode() for key in profiles} == shoppers


@pytest.fixture
def ingest_state(tmp_path: Path) -> Path:
    return tmp_path


def test_a_restarted_ingest_absorbs_resends_and_restores_profiles_exactly(
    kafka_settings: KafkaSettings, ingest_state: Path
) -> None:
    lines = list(read_lines(DEFAULT_DATA, limit=4_000))
    first_replay = replay(kafka_settings, iter(lines))
    acknowledged = set(first_replay.acknowledged_ids)
    with IngestProcess(kafka_settings, ingest_state) as first:
        first.wait_until(200)
        wait_for_outputs(kafka_settings, len(acknowledged), timeout_s=60)
        assert first.metric("recops_ingest_events_forwarded_total") == 0
        assert first.service.terminate() == 0
    before = latest_profiles(kafka_settings)
    accepted = len(ingested_ids(kafka_settings))

    replay(kafka_settings, iter(lines))
    with IngestProcess(kafka_settings, ingest_state) as second:
        second.wait_until(200)
        deadline = time.monotonic() + 60
        while second.metric("recops_ingest_events_duplicate_total") < accepted:
            assert time.monotonic() < deadline, (
                second.metric("recops_ingest_events_consumed_total"),
                second.metric("recops_ingest_events_duplicate_total"),
                second.metric("recops_ingest_events_accepted_total"),
                accepted,
            )
            time.sleep(0.5)
        assert second.service.terminate() == 0

    assert len(ingested_ids(kafka_settings)) == accepted
    assert latest_profiles(kafka_settings) == before
    assert_profiles_count_each_ingested_event_once(kafka_settings)


def paced_lines(
    limit: int, pause_every: int, pause_s: float
) -> Iterator[tuple[int, list[str]]]:
    for count, line in enumerate(read_lines(DEFAULT_DATA, limit=limit)):
        if count % pause_every == 0:
            time.sleep(pause_s)
        yield line


class BackgroundReplay:
    """A replay sending in a thread while the test does other things."""

    def __init__(self, kafka: KafkaSettings, lines: Iterator[tuple[int, list[str]]]):
        self.replayer = Replayer(
            replay_producer(kafka),
            kafka.topic(Topic.BEHAVIOUR_EVENTS),
            keep_acknowledged_ids=True,
        )
        self.thread = threading.Thread(
            target=self.replayer.replay, args=(lines,), daemon=True
        )
        self.thread.start()

    def acknowledged(self, timeout_s: float = 180) -> set[str]:
        self.thread.join(timeout_s)
        assert not self.thread.is_alive()
        return set(self.replayer.acknowledged_ids)


def test_scaling_from_one_to_three_replicas_and_back_loses_and_double_counts_nothing(
    kafka_settings: KafkaSettings, ingest_state: Path
) -> None:
    sending = BackgroundReplay(
        kafka_settings, paced_lines(30_000, pause_every=500, pause_s=0.5)
    )
    with IngestProcess(kafka_settings, ingest_state, 0) as first:
        first.wait_until(200)
        time.sleep(3)
        with (
            IngestProcess(kafka_settings, ingest_state, 1) as second,
            IngestProcess(kafka_settings, ingest_state, 2) as third,
        ):
            second.wait_until(200)
            third.wait_until(200)
            shared = [
                replica.wait_for_events(timeout_s=60) for replica in (second, third)
            ]
            assert second.service.terminate() == 0
            assert third.service.terminate() == 0
        acknowledged = sending.acknowledged()
        wait_for_outputs(kafka_settings, len(acknowledged), timeout_s=90)
        assert first.health()[0] == 200
        assert first.service.terminate() == 0

    assert all(consumed > 0 for consumed in shared)
    assert len(acknowledged) == 30_000
    assert_each_acknowledged_event_came_out_once(kafka_settings, acknowledged)
    assert_profiles_count_each_ingested_event_once(kafka_settings)


def test_consumption_resumes_by_itself_after_repeated_broker_restarts(
    kafka_cluster: LocalCluster, kafka_settings: KafkaSettings, ingest_state: Path
) -> None:
    sending = BackgroundReplay(
        kafka_settings, paced_lines(20_000, pause_every=400, pause_s=0.3)
    )
    with IngestProcess(kafka_settings, ingest_state) as ingest:
        ingest.wait_until(200)
        try:
            for node in (0, 1, 2):
                kafka_cluster.stop_node(node)
                time.sleep(2)
                kafka_cluster.start_node(node)
                kafka_cluster.wait_until_whole()
        finally:
            restart_stopped_nodes(kafka_cluster)
        last_restart = time.monotonic()
        acknowledged = sending.acknowledged()
        wait_for_outputs(kafka_settings, len(acknowledged), timeout_s=60)
        caught_up_s = time.monotonic() - last_restart
        ingest.wait_until(200, timeout_s=30)
        assert ingest.service.terminate() == 0

    assert len(acknowledged) == 20_000
    assert caught_up_s < 60
    assert_each_acknowledged_event_came_out_once(kafka_settings, acknowledged)
    assert_profiles_count_each_ingested_event_once(kafka_settings)


def restart_stopped_nodes(cluster: LocalCluster) -> None:
    """Start every node that is down and wait until all are in sync again."""
    cluster.start_stopped_nodes()
    cluster.wait_until_whole(timeout_s=120)


def test_an_ingest_that_cannot_commit_while_events_wait_is_not_ready_until_it_can(
    kafka_cluster: LocalCluster, kafka_settings: KafkaSettings, ingest_state: Path
) -> None:
    with IngestProcess(
        kafka_settings,
        ingest_state,
        BATCH_MAX_EVENTS="20",
        STALL_SECONDS="3",
        STALL_LAG_EVENTS="10",
    ) as ingest:
        ingest.wait_until(200)
        lines = read_lines(DEFAULT_DATA, limit=3_000)
        acknowledged = set(replay(kafka_settings, lines).acknowledged_ids)
        try:
            kafka_cluster.kill_node(1)
            kafka_cluster.kill_node(2)
            stalled = ingest.wait_until(503, timeout_s=60)
        finally:
            restart_stopped_nodes(kafka_cluster)
        ingest.wait_until(200, timeout_s=90)
        wait_for_outputs(kafka_settings, len(acknowledged), timeout_s=120)
        assert ingest.service.terminate() == 0

    assert "no batch committed" in stalled
    assert_each_acknowledged_event_came_out_once(kafka_settings, acknowledged)


def test_sigterm_with_every_broker_down_exits_within_the_grace_period(
    kafka_cluster: LocalCluster, kafka_settings: KafkaSettings, ingest_state: Path
) -> None:
    lines = read_lines(DEFAULT_DATA, limit=10_000)
    acknowledged = set(replay(kafka_settings, lines).acknowledged_ids)
    with IngestProcess(
        kafka_settings, ingest_state, BATCH_MAX_EVENTS="50", SHUTDOWN_GRACE_SECONDS="5"
    ) as ingest:
        ingest.wait_until(200)
        try:
            for node in (0, 1, 2):
                kafka_cluster.kill_node(node)
            began = time.monotonic()
            status = ingest.service.terminate(timeout_seconds=30)
            stopped_s = time.monotonic() - began
        finally:
            restart_stopped_nodes(kafka_cluster)

    with IngestProcess(kafka_settings, ingest_state) as again:
        again.wait_until(200)
        wait_for_outputs(kafka_settings, len(acknowledged), timeout_s=120)
        assert again.service.terminate() == 0

    assert status == 0
    assert stopped_s < 5 + 10
    assert_each_acknowledged_event_came_out_once(kafka_settings, acknowledged)
    assert_profiles_count_each_ingested_event_once(kafka_settings)


def test_profiles_that_disagree_with_the_checkpoint_keep_ingest_not_ready(
    kafka_settings: KafkaSettings, ingest_state: Path
) -> None:
    replay(kafka_settings, read_lines(DEFAULT_DATA, limit=1_000))
    with IngestProcess(kafka_settings, ingest_state) as first:
        first.wait_until(200)
        wait_for_outputs(kafka_settings, 1_000, timeout_s=60)
        assert first.service.terminate() == 0
    intruder = Producer(kafka_settings.producer_config())
    intruder.produce(
        kafka_settings.topic(Topic.USER_PROFILES),
        key=b"intruder",
        value=UserProfile(shopper_key="intruder").SerializeToString(),
        partition=4,
    )
    assert intruder.flush(30) == 0

    with IngestProcess(kafka_settings, ingest_state) as second:
        refusal = second.wait_until(503, saying="partition 4")
        time.sleep(2)
        assert second.health()[0] == 503
        assert second.metric("recops_ingest_partitions_refused") == 1
        assert second.health("livez")[0] == 200
        assert second.service.terminate() == 0

    assert "partition 4" in refusal


def test_a_replica_whose_instance_id_is_taken_by_another_stops_and_says_why(
    kafka_settings: KafkaSettings, ingest_state: Path
) -> None:
    with IngestProcess(kafka_settings, ingest_state) as first:
        first.wait_until(200)
        with IngestProcess(kafka_settings, ingest_state) as second:
            second.wait_until(200)
            exited = first.service.process.wait(timeout=60)
            acknowledged = set(
                replay(
                    kafka_settings, read_lines(DEFAULT_DATA, limit=500)
                ).acknowledged_ids
            )
            wait_for_outputs(kafka_settings, len(acknowledged), timeout_s=60)
            assert second.service.terminate() == 0

    failures = [
        str(line["message"])
        for line in first.service.log_lines
        if str(line.get("message", "")).startswith("ingest failed")
    ]
    assert exited == 1
    assert len(failures) == 1 and "fenced" in failures[0]
    assert_each_acknowledged_event_came_out_once(kafka_settings, acknowledged)
