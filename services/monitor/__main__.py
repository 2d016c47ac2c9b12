"""``python -m monitor``: watch the platform until SIGTERM or SIGINT."""

from __future__ import annotations

import signal
import sys
import threading
from types import FrameType

from eventbus import KafkaSettings
from eventbus.logs import configure_logging
from monitor import service
from monitor.settings import MonitorSettings


def main() -> int:
    settings = MonitorSettings.from_env()
    configure_logging("monitor", settings.log_level)
    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    service.run(settings, KafkaSettings.from_env(client_id="recops-monitor"), stop)
    return 0


if __name__ == "__main__":
    sys.exit(main())
