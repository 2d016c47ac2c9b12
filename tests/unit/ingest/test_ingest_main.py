import threading
import time

import pytest

from ingest.__main__ import run_bounded
from ingest.errors import IngestError


class Loop:
    """A loop that ends when released, or fails when told to."""

    def __init__(self, failure: BaseException | None = None) -> None:
        self.release = threading.Event()
        self.failure = failure

    def run(self) -> None:
        if self.failure is not None:
            raise self.failure
        self.release.wait()


def test_a_loop_that_ends_after_the_stop_has_finished() -> None:
    loop, stopping = Loop(), threading.Event()
    stopping.set()
    loop.release.set()

    assert run_bounded(loop, stopping, grace_seconds=1.0) is True


def test_a_loop_stuck_past_the_grace_period_is_left_behind() -> None:
    loop, stopping = Loop(), threading.Event()
    threading.Timer(0.2, stopping.set).start()
    began = time.monotonic()

    finished = run_bounded(loop, stopping, grace_seconds=0.1, close_margin_seconds=0.1)

    assert finished is False
    assert time.monotonic() - began < 2.0
    loop.release.set()


def test_a_failing_loop_raises_its_error_in_the_caller() -> None:
    loop = Loop(failure=IngestError("consumer failed"))

    with pytest.raises(IngestError, match="consumer failed"):
        run_bounded(loop, threading.Event(), grace_seconds=1.0)
