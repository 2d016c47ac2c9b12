"""Operator commands for the event bus: ``python -m eventbus create-topics``."""

from __future__ import annotations

import argparse
import json
import sys

from confluent_kafka.admin import AdminClient

from eventbus.settings import KafkaSettings
from eventbus.topics import TOPIC_SPECS, ensure_topics, load_coordinators


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m eventbus")
    parser.add_argument("command", choices=["create-topics", "describe-topics"])
    args = parser.parse_args(argv)
    settings = KafkaSettings.from_env(client_id="recops-admin")
    admin = AdminClient(settings.admin_config())

    if args.command == "create-topics":
        created = ensure_topics(admin, settings.topic_prefix)
        load_coordinators(settings.bootstrap_servers)
        print(json.dumps({"created": created}))
        return 0

    metadata = admin.list_topics(timeout=10)
    names = {settings.topic(spec.topic) for spec in TOPIC_SPECS}
    described = {
        name: {
            "partitions": len(topic.partitions),
            "replicas": sorted({len(p.replicas) for p in topic.partitions.values()}),
            "in_sync": sorted({len(p.isrs) for p in topic.partitions.values()}),
        }
        for name, topic in metadata.topics.items()
        if name in names
    }
    print(json.dumps(described, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
