"""The operator's command: ask for a drill and wait for its result.

    python -m drill run kafka-node-kill --target kafka-node-1 [--fault-seconds 10]

Prints the result as JSON on stdout. Exit status 0 when the drill passed,
1 when it did not, 2 when no result came in time.
"""

from __future__ import annotations

import argparse
import getpass
import json
import logging
import time
import uuid
from datetime import UTC, datetime

from confluent_kafka import Consumer, KafkaError, Message, Producer, TopicPartition

from drill.report import result_document
from eventbus import DecodeError, KafkaSettings, Topic, decode, encode
from eventbus.contracts import DrillCommand, DrillResult, DrillVerdict

logger = logging.getLogger(__name__)

PARAMETER_OPTIONS = (
    "fault_seconds",
    "probe_events_per_second",
    "requests_per_second",
    "max_recovery_seconds",
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``run`` command's options."""
    parser.add_argument("experiment", help="such as kafka-node-kill")
    parser.add_argument("--target", required=True, help="such as kafka-node-1")
    for name in PARAMETER_OPTIONS:
        parser.add_argument(f"--{name.replace('_', '-')}", dest=name, type=float)
    parser.add_argument("--drill-id", default=None)
    parser.add_argument("--timeout-seconds", type=float, default=900.0)


def command_from(args: argparse.Namespace) -> DrillCommand:
    """The drill command the operator's options describe."""
    drill_id = args.drill_id or (
        datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ-") + uuid.uuid4().hex[:8]
    )
    parameters = {
        name: f"{getattr(args, name):g}"
        for name in PARAMETER_OPTIONS
        if getattr(args, name) is not None
    }
    command = DrillCommand(
        drill_id=drill_id,
        experiment=args.experiment,
        target=args.target,
        parameters=parameters,
        requested_by=getpass.getuser(),
    )
    command.requested_at.FromDatetime(datetime.now(UTC))
    return command


def run(args: argparse.Namespace, kafka: KafkaSettings) -> int:
    """Publish the command, follow DRILL_RESULTS, print the result."""
    command = command_from(args)
    results = _follow_results(kafka)
    try:
        _publish(kafka, command)
        logger.info("drill requested", extra={"drill_id": command.drill_id})
        result = _await_result(results, command.drill_id, args.timeout_seconds)
    finally:
        results.close()
    if result is None:
        logger.error("no result within %gs", args.timeout_seconds)
        return 2
    print(json.dumps(result_document(result), indent=2))
    return 0 if result.verdict == DrillVerdict.DRILL_VERDICT_PASSED else 1


def _follow_results(kafka: KafkaSettings) -> Consumer:
    """A consumer placed at the current end of DRILL_RESULTS, before asking."""
    topic = kafka.topic(Topic.DRILL_RESULTS)
    group = f"recops-drill-cli-{uuid.uuid4().hex}"
    consumer = Consumer(kafka.consumer_config(group, logger=logger))
    metadata = consumer.list_topics(topic, timeout=10)
    ends = []
    for partition in metadata.topics[topic].partitions:
        where = TopicPartition(topic, partition)
        _, high = consumer.get_watermark_offsets(where, timeout=10)
        ends.append(TopicPartition(topic, partition, high))
    consumer.assign(ends)
    return consumer


def _publish(kafka: KafkaSettings, command: DrillCommand) -> None:
    value, encoded_headers = encode(command)
    headers: list[tuple[str, str | bytes | None]] = list(encoded_headers)
    errors: list[KafkaError] = []

    def on_delivery(error: KafkaError | None, _: Message) -> None:
        if error is not None:
            errors.append(error)

    producer = Producer(kafka.producer_config(logger=logger))
    producer.produce(
        kafka.topic(Topic.DRILL_COMMANDS),
        value=value,
        key=command.drill_id.encode(),
        headers=headers,
        on_delivery=on_delivery,
    )
    if producer.flush(30) or errors:
        reason = errors[0].str() if errors else "not acknowledged in time"
        raise SystemExit(f"drill command not published: {reason}")


def _await_result(
    consumer: Consumer, drill_id: str, timeout_seconds: float
) -> DrillResult | None:
    deadline = time.monotonic() + timeout_seconds
    while time.monotonic() < deadline:
        record = consumer.poll(0.5)
        if record is None or record.error() is not None:
            continue
        try:
            result = decode(DrillResult, record.value(), _header_pairs(record))
        except DecodeError:
            continue
        if result.drill_id == drill_id:
            return result
    return None


def _header_pairs(record: Message) -> list[tuple[str, bytes | str | None]]:
    headers = record.headers()
    if isinstance(headers, dict):
        return list(headers.items())
    return list(headers or [])
