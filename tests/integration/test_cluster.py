import uuid

from confluent_kafka import Producer

from eventbus import KafkaSettings
from eventbus.topics import Topic
from tests.conftest import LocalCluster


def acknowledged_writes(settings: KafkaSettings, count: int) -> int:
    producer = Producer(settings.producer_config(**{"message.timeout.ms": 30_000}))
    acked = 0

    def on_delivery(error: object, _record: object) -> None:
        nonlocal acked
        acked += error is None

    topic = settings.topic(Topic.BEHAVIOUR_EVENTS)
    for n in range(count):
        producer.produce(
            topic, key=str(n), value=uuid.uuid4().bytes, on_delivery=on_delivery
        )
    producer.flush(60)
    return acked


def test_a_killed_node_is_reported_down_and_comes_back_whole(
    kafka_cluster: LocalCluster, kafka_settings: KafkaSettings
) -> None:
    kafka_cluster.kill_node(2)
    try:
        nodes = kafka_cluster.status()["nodes"]
        assert [node["listening"] for node in nodes] == [True, True, False]
        assert acknowledged_writes(kafka_settings, 200) == 200
    finally:
        kafka_cluster.start_node(2)
        kafka_cluster.wait_until_whole()

    assert all(node["listening"] for node in kafka_cluster.status()["nodes"])
