"""Entry points: ``python -m ingest`` runs the service, ``... snapshot`` snapshots."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from types import FrameType
from typing import Protocol

from prometheus_client import CollectorRegistry

import ingest
from eventbus.http import ServiceEndpoint
from eventbus.logs import configure_logging
from eventbus.topics import Topic
from ingest.errors import ConfigurationError, IngestError
from ingest.metrics import IngestMetrics
from ingest.service import IngestService
from ingest.settings import IngestSettings
from ingest.snapshot import read_ingested_events, split_events, write_snapshot

logger = logging.getLogger("ingest")

# How long closing the consumer may take after the grace period.
CLOSE_MARGIN_SECONDS = 5.0


class LoopService(Protocol):
    """What :func:`run_bounded` runs: a loop that ends some time after a stop."""

    def run(self) -> None: ...


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
    try:
        endpoint = ServiceEndpoint(
            settings.metrics_port,
            registry,
            live=service.health.live_problem,
            ready=service.health.ready_problem,
        ).start()
    except OSError as exc:
        raise ConfigurationError(
            f"RECOPS_INGEST_METRICS_PORT={settings.metrics_port} cannot be served: "
            f"{exc.strerror}"
        ) from exc
    logger.info(
        "metrics and health served",
        extra={"port": endpoint.port, "paths": ["/metrics", "/livez", "/readyz"]},
    )

    stopping = threading.Event()

    def on_signal(signum: int, _: FrameType | None) -> None:
        logger.info("stopping on %s", signal.Signals(signum).name)
        service.stop()
        stopping.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        finished = run_bounded(service, stopping, settings.shutdown_grace_seconds)
    finally:
        endpoint.stop()
    if not finished:
        logging.shutdown()
        os._exit(0)
    return 0


def run_bounded(
    service: LoopService,
    stopping: threading.Event,
    grace_seconds: float,
    *,
    close_margin_seconds: float = CLOSE_MARGIN_SECONDS,
) -> bool:
    """Run the loop in a thread; False when it outlived a stop by too long.

    A librdkafka call can block far beyond its timeout while no broker is
    reachable, and the main thread must stay free to take signals. Once a
    stop was asked for, the loop gets the grace period and a margin to close;
    a loop still waiting after that holds only an uncommitted batch, which
    the next instance reads again, so the caller may end the process
    without it.
    """
    failures: list[BaseException] = []

    def loop() -> None:
        try:
            service.run()
        except BaseException as exc:
            failures.append(exc)

    worker = threading.Thread(target=loop, name="ingest-loop", daemon=True)
    worker.start()
    while worker.is_alive() and not stopping.is_set():
        worker.join(0.5)
    worker.join(grace_seconds + close_margin_seconds)
    if worker.is_alive():
        logger.warning(
            "the ingest loop is still waiting on a broker %.0fs after the stop; "
            "exiting without it, its uncommitted batch will be read again",
            grace_seconds + close_margin_seconds,
        )
        return False
    if failures:
        raise failures[0]
    return True


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
