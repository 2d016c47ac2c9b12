"""``python -m trainer train --snapshot <dir|latest>``: train, store, announce.

Prints the test-quality tables for people (the model beside the baselines
and the serving model, repeats allowed and new items only, at K = 10 and 20),
the quality gate's verdict, then one JSON line with the run's summary (model
version, artifact URI, digest, metrics) as the last line of stdout. Logs go
to stderr as JSON; progress bars too, when stderr is a terminal. Exit
status: 0 done, 1 failed, 3 refused by the quality gate (an alert says so),
75 failed in a way worth retrying (the cluster did not acknowledge
ModelReady).

``python -m trainer registry list|verify|backup --to X|restore --from X``
looks after the stored versions; see :mod:`trainer.registry_cli`.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
from collections.abc import Sequence

import torch
from prometheus_client import CollectorRegistry, start_http_server

from eventbus import KafkaSettings
from eventbus.logs import configure_logging
from trainer.errors import TrainerError
from trainer.evaluation import (
    GATE_CANDIDATES,
    REPORTED_CUTOFFS,
    Candidates,
    quality_table,
)
from trainer.metrics import TrainerMetrics
from trainer.pipeline import ModelRefusedError, TrainingReport, run_training
from trainer.publish import KafkaAlertPublisher, KafkaModelReadyPublisher
from trainer.registry_cli import add_registry_commands, run_registry_command
from trainer.settings import TrainerSettings, config_field_types, parse_field
from trainer.snapshot import resolve_snapshot

logger = logging.getLogger("trainer")

EXIT_FAILED = 1
EXIT_REFUSED = 3
EXIT_RETRIABLE = 75


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m trainer")
    commands = parser.add_subparsers(dest="command", required=True)
    train = commands.add_parser("train", help="train on a snapshot and publish")
    train.add_argument(
        "--snapshot", required=True, help="snapshot directory, or 'latest'"
    )
    train.add_argument(
        "--no-publish",
        action="store_true",
        help="store the model, announce nothing, leave the serving version as it is",
    )
    train.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="progress bars on stderr (default: when stderr is a terminal)",
    )
    hyperparameters = train.add_argument_group(
        "hyperparameters (default from RECOPS_TRAINER_<NAME>)"
    )
    for name, kind in config_field_types().items():
        hyperparameters.add_argument(
            "--" + name.replace("_", "-"), dest=name, type=kind, default=None
        )
    add_registry_commands(commands)
    return parser


def settings_with_overrides(
    settings: TrainerSettings, args: argparse.Namespace
) -> TrainerSettings:
    """The settings, with hyperparameters given on the command line applied."""
    overrides = {
        name: parse_field(name, kind, str(value))
        for name, kind in config_field_types().items()
        if (value := getattr(args, name)) is not None
    }
    training = dataclasses.replace(settings.training, **overrides)  # type: ignore[arg-type]
    return dataclasses.replace(settings, training=training)


def serve_metrics(port: int, registry: CollectorRegistry) -> None:
    """Serve /metrics while the run lasts; a busy port only costs a warning."""
    if port < 0:
        return
    try:
        server, _ = start_http_server(port, registry=registry)
    except OSError as exc:
        logger.warning("metrics not served: %s", exc, extra={"port": port})
        return
    logger.info("serving metrics", extra={"port": server.server_port})


def print_report(report: TrainingReport) -> None:
    manifest = report.stored.manifest
    gated = report.quality["model"][GATE_CANDIDATES]
    print(
        f"{manifest.model_name} {manifest.version} on snapshot "
        f"{manifest.snapshot_id}: test split, {gated.customers} customers, "
        f"ranked against all {manifest.item_count - 1} products"
    )
    for candidates in Candidates:
        rows = {name: table[candidates] for name, table in report.quality.items()}
        for cutoff in REPORTED_CUTOFFS:
            gate_note = (
                " (the quality gate's measure)" if candidates is GATE_CANDIDATES else ""
            )
            print(f"\n{TABLE_TITLES[candidates]}, K = {cutoff}{gate_note}")
            print(quality_table(rows, cutoff))
    decision = report.decision
    verdict = "accepted" if decision.accepted else "REFUSED"
    serving = (
        f"serving {decision.serving_version} {decision.serving_value:.4f}, "
        f"lowest accepted {decision.threshold:.4f}"
        if decision.serving_value is not None and decision.threshold is not None
        else "no serving model to compare with"
    )
    print(
        f"\nquality gate: {verdict}; {decision.metric} "
        f"{decision.candidate_value or 0.0:.4f} ({serving})"
    )
    for reason in decision.reasons:
        print(f"  - {reason}")
    print(
        f"trained {report.trained.training_seconds:.1f} s, "
        f"{len(report.trained.epochs)} epochs (best {report.trained.best_epoch}, "
        f"stopped: {report.trained.stop_reason}), then "
        f"{report.trained.refit_epochs} on training and validation; "
        f"peak memory {report.peak_memory_bytes / 2**20:.0f} MiB"
    )
    print(json.dumps(report.as_json()), flush=True)


TABLE_TITLES = {
    Candidates.REPEATS: "repeats allowed",
    Candidates.NEW_ITEMS: "new items only (past purchases neither shown nor counted)",
}


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = TrainerSettings.from_env()
        if args.command != "registry":
            settings = settings_with_overrides(settings, args)
    except ValueError as exc:
        print(f"python -m trainer: {exc}", file=sys.stderr)
        return 2
    configure_logging("trainer", settings.log_level)
    if args.command == "registry":
        return run_registry_command(args, settings)
    torch.set_num_threads(settings.torch_threads)

    registry = CollectorRegistry()
    metrics = TrainerMetrics(registry)
    serve_metrics(settings.metrics_port, registry)
    try:
        snapshot_dir = resolve_snapshot(args.snapshot, settings.snapshots_dir)
        publisher = alerts = None
        if not args.no_publish:
            kafka = KafkaSettings.from_env(client_id="recops-trainer")
            timeout = settings.publish_timeout_seconds
            publisher = KafkaModelReadyPublisher(kafka, timeout_seconds=timeout)
            alerts = KafkaAlertPublisher(kafka, timeout_seconds=timeout)
        progress = sys.stderr.isatty() if args.progress is None else args.progress
        report = run_training(
            settings,
            snapshot_dir,
            publisher,
            metrics,
            alerts=alerts,
            progress=progress,
        )
    except ModelRefusedError as exc:
        print_report(exc.report)
        logger.error("training run refused: %s", exc)
        return EXIT_REFUSED
    except TrainerError as exc:
        logger.error("training run failed: %s", exc, extra={"retriable": exc.retriable})
        return EXIT_RETRIABLE if exc.retriable else EXIT_FAILED
    print_report(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
