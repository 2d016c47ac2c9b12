"""``python -m drill`` serves drill commands; ``... run ...`` asks for one."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from types import FrameType

from drill import cli, service
from drill.errors import DrillError
from drill.settings import DrillSettings
from eventbus import KafkaSettings
from eventbus.logs import configure_logging


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m drill")
    commands = parser.add_subparsers(dest="command")
    cli.add_arguments(commands.add_parser("run", help="run one drill and wait for it"))
    args = parser.parse_args(argv)
    try:
        settings = DrillSettings.from_env()
    except DrillError as exc:
        print(f"drill: {exc}", file=sys.stderr)
        return 2
    configure_logging("drill", settings.log_level)

    if args.command == "run":
        return cli.run(args, KafkaSettings.from_env(client_id="recops-drill-cli"))
    return serve(settings)


def serve(settings: DrillSettings) -> int:
    """Run the service until SIGTERM or SIGINT; a drill in progress is reverted."""
    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    service.serve(settings, KafkaSettings.from_env(client_id="recops-drill"), stop)
    return 0


if __name__ == "__main__":
    sys.exit(main())
