"""The monitor service: its Kafka clients, metrics endpoint and watchers."""

from __future__ import annotations

import logging
import threading

from confluent_kafka import Producer
from prometheus_client import CollectorRegistry, start_http_server

from eventbus import KafkaSettings, Topic
from monitor.alerts import KafkaAlertPublisher
from monitor.lag import KafkaLagReader
from monitor.metrics import MonitorMetrics
from monitor.rules import ThresholdRule
from monitor.settings import MonitorSettings
from monitor.watcher import CONSUMER_LAG_HIGH, LagWatcher

logger = logging.getLogger(__name__)


def run(settings: MonitorSettings, kafka: KafkaSettings, stop: threading.Event) -> None:
    """Serve metrics and watch consumer lag until ``stop`` is set."""
    registry = CollectorRegistry()
    metrics = MonitorMetrics(registry)
    server, server_thread = start_http_server(settings.metrics_port, registry=registry)
    logger.info("serving metrics", extra={"port": server.server_port})

    producer = Producer(kafka.producer_config(logger=logger))
    lag_reader = KafkaLagReader.connect(
        kafka,
        group=settings.watched_group,
        topic=kafka.topic(Topic.BEHAVIOUR_EVENTS),
        timeout_seconds=settings.kafka_timeout_seconds,
    )
    watcher = LagWatcher(
        lag_source=lag_reader,
        publisher=KafkaAlertPublisher(
            producer,
            kafka.topic(Topic.ALERTS),
            timeout_seconds=settings.kafka_timeout_seconds,
        ),
        rule=ThresholdRule(
            name=CONSUMER_LAG_HIGH,
            threshold=settings.lag_threshold_events,
            for_seconds=settings.lag_for_seconds,
        ),
        metrics=metrics,
    )
    try:
        watcher.run(stop, interval_seconds=settings.evaluation_interval_seconds)
    finally:
        lag_reader.close()
        producer.flush(settings.kafka_timeout_seconds)
        server.shutdown()
        server_thread.join(timeout=5)
        logger.info("monitor stopped")
