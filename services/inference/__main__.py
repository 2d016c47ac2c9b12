"""``python -m inference``: serve Recommend until SIGTERM or SIGINT."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys

from eventbus import KafkaSettings
from eventbus.logs import configure_logging
from inference.errors import SettingsError
from inference.server import InferenceServer
from inference.settings import InferenceSettings

logger = logging.getLogger("inference")


async def serve(settings: InferenceSettings, kafka: KafkaSettings) -> None:
    """Run the server until the process is asked to stop."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)

    server = InferenceServer(settings, kafka)
    try:
        await server.start()
        await stop.wait()
    finally:
        await server.stop()


def main() -> int:
    configure_logging("inference")
    try:
        settings = InferenceSettings.from_env()
    except SettingsError as exc:
        logger.error("cannot start: %s", exc)
        return 2
    configure_logging("inference", settings.log_level)
    kafka = KafkaSettings.from_env(client_id="recops-inference")
    try:
        asyncio.run(serve(settings, kafka))
    except Exception:  # a port in use, say: say so in the log, exit non-zero
        logger.exception("inference stopped on an error")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
