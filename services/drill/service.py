"""The drill service: takes commands from DRILL_COMMANDS, answers on DRILL_RESULTS."""

from __future__ import annotations

import logging
import threading

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer
from confluent_kafka.admin import AdminClient
from prometheus_client import CollectorRegistry, start_http_server

from drill.errors import DrillError
from drill.faults import ScriptCluster
from drill.health import KafkaClusterHealth
from drill.kafka_node_kill import KafkaNodeKillExperiment
from drill.kit import KafkaProbeKit
from drill.ledger import FaultLedger
from drill.metrics import DrillMetrics
from drill.runner import DrillRunner, revert_open_faults
from drill.settings import DrillSettings
from eventbus import DecodeError, KafkaSettings, Topic, decode, encode
from eventbus.contracts import DrillCommand, DrillResult

logger = logging.getLogger(__name__)

GROUP_ID = "recops-drill"
# A drill holds the consumer for minutes without polling; let it.
MAX_POLL_INTERVAL_MS = 3_600_000


class DrillService:
    """Runs one drill at a time, in the order the commands arrive.

    A command's offset is committed before its drill starts: a drill service
    that dies mid-drill reverts the open fault when it starts again, but it
    never repeats a destructive experiment on its own.
    """

    def __init__(
        self,
        *,
        consumer: Consumer,
        producer: Producer,
        kafka: KafkaSettings,
        runner: DrillRunner,
        timeout_seconds: float,
    ) -> None:
        self._consumer = consumer
        self._producer = producer
        self._kafka = kafka
        self._runner = runner
        self._timeout_seconds = timeout_seconds

    def run(self, stop: threading.Event) -> None:
        """Serve commands until ``stop`` is set.

        A drill in progress when ``stop`` is set ends early: its fault is
        reverted and it is answered as aborted.
        """
        topic = self._kafka.topic(Topic.DRILL_COMMANDS)
        self._consumer.subscribe([topic])
        logger.info("waiting for drill commands", extra={"topic": topic})
        while not stop.is_set():
            record = self._consumer.poll(0.5)
            if record is None:
                continue
            command = self._take(record)
            if command is not None:
                self._publish(self._runner.run(command))

    def _take(self, record: Message) -> DrillCommand | None:
        error = record.error()
        if error is not None:
            logger.warning("consumer error: %s", error.str())
            return None
        try:
            self._consumer.commit(message=record, asynchronous=False)
        except KafkaException as exc:
            logger.warning(
                "drill command not committed; a restart may run it again: %s",
                exc,
                extra={"offset": record.offset()},
            )
        try:
            return decode(DrillCommand, record.value(), _header_pairs(record))
        except DecodeError as exc:
            logger.error(
                "unreadable drill command skipped: %s",
                exc,
                extra={"partition": record.partition(), "offset": record.offset()},
            )
            return None

    def _publish(self, result: DrillResult) -> None:
        value, encoded_headers = encode(result)
        headers: list[tuple[str, str | bytes | None]] = list(encoded_headers)
        errors: list[KafkaError] = []

        def on_delivery(error: KafkaError | None, _: Message) -> None:
            if error is not None:
                errors.append(error)

        self._producer.produce(
            self._kafka.topic(Topic.DRILL_RESULTS),
            value=value,
            key=result.drill_id.encode(),
            headers=headers,
            on_delivery=on_delivery,
        )
        unsent = self._producer.flush(self._timeout_seconds)
        if errors or unsent:
            reason = errors[0].str() if errors else "not acknowledged in time"
            logger.error(
                "drill result not published; see its report: %s",
                reason,
                extra={"drill_id": result.drill_id, "report": result.report_uri},
            )


def serve(settings: DrillSettings, kafka: KafkaSettings, stop: threading.Event) -> None:
    """Wire the service to Kafka, the cluster script and the storefront; run it."""
    registry = CollectorRegistry()
    metrics = DrillMetrics(registry)
    server, server_thread = start_http_server(settings.metrics_port, registry=registry)
    logger.info("serving metrics", extra={"port": server.server_port})

    cluster = ScriptCluster(
        script=settings.cluster_script,
        python=settings.cluster_python,
        env=settings.cluster_env,
        timeout_seconds=settings.cluster_command_timeout_seconds,
    )
    ledger = FaultLedger(settings.ledger_path)
    revert_open_faults(ledger, cluster)
    experiment = KafkaNodeKillExperiment(
        settings=settings,
        cluster=cluster,
        health=KafkaClusterHealth(
            cluster=cluster,
            admin=AdminClient(kafka.admin_config()),
            topics=[
                kafka.topic(Topic.BEHAVIOUR_EVENTS),
                kafka.topic(Topic.INGESTED_EVENTS),
            ],
            timeout_seconds=settings.kafka_timeout_seconds,
        ),
        ledger=ledger,
        probes=KafkaProbeKit(settings, kafka),
        metrics=metrics,
        stop=stop,
    )
    runner = DrillRunner(
        settings=settings, experiments={experiment.name: experiment}, metrics=metrics
    )
    consumer = Consumer(
        kafka.consumer_config(
            GROUP_ID, logger=logger, **{"max.poll.interval.ms": MAX_POLL_INTERVAL_MS}
        )
    )
    producer = Producer(kafka.producer_config(logger=logger))
    service = DrillService(
        consumer=consumer,
        producer=producer,
        kafka=kafka,
        runner=runner,
        timeout_seconds=settings.kafka_timeout_seconds,
    )
    try:
        service.run(stop)
    except DrillError as exc:
        logger.error("drill service stopped: %s", exc)
        raise
    finally:
        consumer.close()
        producer.flush(settings.kafka_timeout_seconds)
        server.shutdown()
        server_thread.join(timeout=5)
        logger.info("drill service stopped")


def _header_pairs(record: Message) -> list[tuple[str, bytes | str | None]]:
    headers = record.headers()
    if isinstance(headers, dict):
        return list(headers.items())
    return list(headers or [])
