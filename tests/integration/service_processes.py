"""Services started as the operator starts them: ``python -m <service>``.

Shared by the monitor and drill cluster tests. Each process's JSON log lines
are collected, so a test can wait for one and print them all when it fails.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def service_env(**settings: str) -> dict[str, str]:
    """The environment plus the import paths and the given settings."""
    paths = os.pathsep.join(str(REPO / p) for p in ("", "services", "build/gen"))
    return {**os.environ, "PYTHONPATH": paths, **settings}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ServiceProcess:
    """One ``python -m <module>`` child process and its log lines."""

    def __init__(self, module: str, env: dict[str, str]) -> None:
        self.module = module
        self.process = subprocess.Popen(
            [sys.executable, "-m", module],
            cwd=REPO,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.log_lines: list[dict[str, object]] = []
        self._reader = threading.Thread(target=self._read_log, daemon=True)
        self._reader.start()

    def _read_log(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            try:
                self.log_lines.append(json.loads(line))
            except json.JSONDecodeError:
                self.log_lines.append({"message": line.rstrip()})

    def wait_for_log(
        self, message: str, timeout_seconds: float = 60
    ) -> dict[str, object]:
        """The first log line with this message, waiting for it if need be."""
        deadline = time.monotonic() + timeout_seconds
        while time.monotonic() < deadline:
            for line in list(self.log_lines):
                if line.get("message") == message:
                    return line
            if self.process.poll() is not None:
                break
            time.sleep(0.1)
        raise AssertionError(f"{self.module} never logged {message!r}")

    def terminate(self, timeout_seconds: float = 20) -> int:
        """SIGTERM, as an orchestrator stops a service; its exit status."""
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=timeout_seconds)

    def close(self) -> None:
        """Kill the process if it still runs; print its log for a failed test."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self._reader.join(timeout=5)
        assert self.process.stderr is not None
        self.process.stderr.close()
        for line in self.log_lines:
            print(self.module, json.dumps(line))
