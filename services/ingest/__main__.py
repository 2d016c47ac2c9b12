"""Entry points: ``python -m ingest`` runs the service, ``... snapshot`` snapshots."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from types import FrameType

from prometheus_client import CollectorRegistry

import ingest
from eventbus.http import ServiceEndpoint
from eventbus.logs import configure_logging
from eventbus.topics import Topic
from ingest.errors import IngestError
from ingest.metrics import IngestMetrics
from ingest.service import IngestService
from ingest.settings import IngestSettings
from ingest.snapshot import read_ingested_events, split_events, write_snapshot

logger = logging.getLogger("ingest")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ingest")
    parser.add_argument(
        "command",
        nargs="?",
        default="run",
        choices=["run", "snapshot"],
        help="run the ingest service (default) or write a training snapshot",
    )
    args = parser.parse_args(argv)
    try:
        settings = IngestSettings.from_env()
    except IngestError as exc:
        print(f"ingest: {exc}", file=sys.stderr)
        return 2
    configure_logging("ingest", settings.log_level)

    try:
        if args.command == "snapshot":
            return snapshot(settings)
        return serve(settings)
    except IngestError as exc:
        logger.error("ingest failed: %s", exc, extra={"retriable": exc.retriable})
        return 1


def serve(settings: IngestSettings) -> int:
    """Run the service until SIGTERM or SIGINT; metrics and health on one port."""
    registry = CollectorRegistry()
    metrics = IngestMetrics(registry)
    service = IngestService.connect(settings, metrics)
    endpoint = ServiceEndpoint(
        settings.metrics_port,
        registry,
        live=service.health.live_problem,
        ready=service.health.ready_problem,
    ).start()
    logger.info(
        "metrics and health served",
        extra={"port": endpoint.port, "paths": ["/metrics", "/livez", "/readyz"]},
    )

    def on_signal(signum: int, _: FrameType | None) -> None:
        logger.info("stopping on %s", signal.Signals(signum).name)
        service.stop()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        service.run()
    finally:
        endpoint.stop()
    return 0


def snapshot(settings: IngestSettings) -> int:
    """Write a training snapshot and print its directory last."""
    topic = settings.kafka.topic(Topic.INGESTED_EVENTS)
    log = read_ingested_events(
        settings.kafka, topic, timeout_seconds=settings.snapshot_timeout_seconds
    )
    split = split_events(log.events)
    directory = write_snapshot(
        split,
        settings.state_dir / "snapshots",
        source_topic=topic,
        end_offsets=log.end_offsets,
        ingest_version=ingest.__version__,
    )
    logger.info(
        "snapshot written",
        extra={
            "snapshot_dir": str(directory),
            "train": len(split.train),
            "validation": len(split.validation),
            "test": len(split.test),
            "duplicates_dropped": split.duplicates_dropped,
        },
    )
    print(directory.resolve())
    return 0


if __name__ == "__main__":
    sys.exit(main())
