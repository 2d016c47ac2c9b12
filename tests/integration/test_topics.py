from confluent_kafka.admin import AdminClient, ConfigResource

from eventbus import KafkaSettings
from eventbus.topics import TOPIC_SPECS, Topic


def test_project_topics_have_three_replicas_and_two_in_sync_minimum(
    kafka_settings: KafkaSettings,
) -> None:
    admin = AdminClient(kafka_settings.admin_config())
    names = [kafka_settings.topic(spec.topic) for spec in TOPIC_SPECS]

    metadata = admin.list_topics(timeout=10)
    resources = [ConfigResource("topic", name) for name in names]
    configs = {
        resource.name: future.result()
        for resource, future in admin.describe_configs(resources).items()
    }

    for name in names:
        partitions = metadata.topics[name].partitions.values()
        assert {len(p.replicas) for p in partitions} == {3}
        assert configs[name]["min.insync.replicas"].value == "2"
    profiles = configs[kafka_settings.topic(Topic.USER_PROFILES)]
    assert profiles["cleanup.policy"].value == "compact"
