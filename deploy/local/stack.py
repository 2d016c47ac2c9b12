"""Run recops services as local processes, each with its own log file.

The demo, the benchmarks and the integration tests start the same entry points
an operator would (``python -m ingest`` and so on); this module only starts,
watches and stops them.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

logger = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parent.parent.parent


class ServiceExitedError(RuntimeError):
    """A service process ended while it was expected to run."""


@dataclasses.dataclass
class ServiceProcess:
    """One service started with ``python -m <module>``."""

    name: str
    module: str
    env: Mapping[str, str]
    log_path: Path
    args: tuple[str, ...] = ()
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", self.module, *self.args],
                cwd=REPO,
                env=dict(self.env),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        logger.info("started %s", self.name, extra={"pid": self.process.pid})

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def check(self) -> None:
        """Raise if the process has ended."""
        if self.process is not None and self.process.poll() is not None:
            raise ServiceExitedError(
                f"{self.name} exited with {self.process.returncode}; "
                f"see {self.log_path}"
            )

    def stop(self, grace_s: float = 20.0) -> int | None:
        """SIGTERM, wait up to ``grace_s``, then SIGKILL; return the exit code."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                logger.warning("%s ignored SIGTERM for %.0fs", self.name, grace_s)
                self.process.kill()
                self.process.wait()
        return self.process.returncode


def wait_for_port(port: int, timeout_s: float, service: ServiceProcess) -> None:
    """Wait until something listens on a loopback port."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        service.check()
        with socket.socket() as sock:
            sock.settimeout(0.5)
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise TimeoutError(f"{service.name} not listening on {port} after {timeout_s}s")


def service_env(base: Mapping[str, str] | None = None, **extra: str) -> dict[str, str]:
    """The environment a service process runs with: ours, plus ``extra``."""
    env = dict(os.environ if base is None else base)
    paths = [str(REPO), str(REPO / "services"), str(REPO / "build" / "gen")]
    env["PYTHONPATH"] = os.pathsep.join(paths)
    env.update(extra)
    return env
