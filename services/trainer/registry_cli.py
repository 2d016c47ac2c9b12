"""``python -m trainer registry list|verify|backup|restore``, for operators and drills.

Each prints one line per model version. Exit status: 0 every version is
good (or was copied), 1 some version failed its checks (they are named on
stdout and in the log), 2 the command was given something it cannot use,
75 the store could not be reached (worth retrying).
"""

from __future__ import annotations

import argparse
import logging
import sys
import tarfile
from collections.abc import Iterable
from pathlib import Path

from trainer.errors import ArtifactError
from trainer.registry import (
    Outcome,
    VersionOutcome,
    back_up,
    read_manifest,
    read_serving,
    restore,
    store_for,
    verify_registry,
)
from trainer.settings import TrainerSettings
from trainer.storage import ArtifactStore

logger = logging.getLogger(__name__)

EXIT_BAD_VERSIONS = 1
EXIT_BAD_INPUT = 2
EXIT_RETRIABLE = 75


def add_registry_commands(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add ``registry`` and its subcommands to the trainer's parser."""
    registry = commands.add_parser("registry", help="list, verify, back up, restore")
    actions = registry.add_subparsers(dest="registry_command", required=True)
    actions.add_parser("list", help="every complete model version")
    actions.add_parser("verify", help="check every file of every version")
    backup = actions.add_parser("backup", help="copy every good version")
    backup.add_argument(
        "--to", required=True, type=Path, help="directory, .tar or .tar.gz"
    )
    restore_parser = actions.add_parser("restore", help="put back missing versions")
    restore_parser.add_argument(
        "--from",
        dest="source",
        required=True,
        type=Path,
        help="directory, .tar or .tar.gz",
    )


def run_registry_command(args: argparse.Namespace, settings: TrainerSettings) -> int:
    """Run one ``registry`` subcommand; the exit status."""
    try:
        store = store_for(settings)
        if args.registry_command == "list":
            return _list(store)
        if args.registry_command == "verify":
            return _report(verify_registry(store))
        if args.registry_command == "backup":
            return _report(back_up(store, args.to))
        return _report(restore(store, args.source))
    except (OSError, ValueError, tarfile.TarError) as exc:
        print(f"python -m trainer registry: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except ArtifactError as exc:
        print(f"python -m trainer registry: {exc}", file=sys.stderr)
        return EXIT_RETRIABLE if exc.retriable else EXIT_BAD_INPUT


def _list(store: ArtifactStore) -> int:
    for model_name in store.model_names():
        pointer = read_serving(store, model_name)
        serving = pointer.version if pointer else None
        for version in store.version_names(model_name):
            mark = "  serving" if version == serving else ""
            try:
                manifest = read_manifest(store, model_name, version)
            except ArtifactError as exc:
                print(f"{model_name} {version} {exc}{mark}")
                continue
            print(
                f"{model_name} {version} {manifest.created_at} "
                f"{manifest.sha256[:12]} {manifest.size_bytes}{mark}"
            )
    return 0


def _report(outcomes: Iterable[VersionOutcome]) -> int:
    failed = []
    for outcome in outcomes:
        line = f"{outcome.model_name} {outcome.version} {outcome.outcome}"
        print(line + "".join(f"\n    {problem}" for problem in outcome.problems))
        if outcome.outcome is Outcome.FAILED:
            failed.append(outcome.version)
    if failed:
        print(f"{len(failed)} bad version(s): {' '.join(failed)}")
        logger.error("bad model versions: %s", " ".join(failed))
        return EXIT_BAD_VERSIONS
    return 0
