"""Dynamic micro-batching: concurrent requests scored together in one call.

Requests wait in arrival order. A batch leaves when it holds
``max_batch_size`` requests, or when its oldest request has waited
``max_delay_seconds``, whichever comes first. It is scored in a worker thread,
so the event loop keeps taking calls while the model runs, and each answer
goes back to the caller whose request id it carries, never by its place in
the batch.

The queue is bounded: past ``max_queue_size`` waiting requests a new one is
refused at once, so callers hear "overloaded" instead of timing out. A
request whose deadline passes while it waits is dropped before scoring, and
a caller that goes away takes its request out of the queue. A batch already
handed to the model runs to the end; answers nobody waits for are discarded.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Executor
from typing import Generic, Protocol, TypeVar

from inference.errors import (
    DeadlineExceededError,
    InferenceError,
    NotReadyError,
    OverloadedError,
)
from inference.metrics import InferenceMetrics

logger = logging.getLogger(__name__)


class Batchable(Protocol):
    """A request that names itself, so its answer can find its way back."""

    @property
    def request_id(self) -> str: ...


Request = TypeVar("Request", bound=Batchable)
Answer = TypeVar("Answer")

# Scores one batch; answers (or the error for one request) by request id.
BatchScorer = Callable[[Sequence[Request]], Mapping[str, Answer | InferenceError]]


class MissingAnswerError(InferenceError):
    """The scorer returned no answer for a request it was given."""


@dataclasses.dataclass(eq=False)
class _Waiting(Generic[Request, Answer]):
    request: Request
    future: asyncio.Future[Answer]
    arrived_at: float
    deadline: float | None  # on the batcher's clock


class MicroBatcher(Generic[Request, Answer]):
    """Collects requests into batches and scores them off the event loop.

    ``concurrent_batches`` batches may be scored at once, each in a thread of
    ``executor``; while all are busy, arrivals wait and form the next batch.
    Deadlines are read on ``clock``, in seconds.
    """

    def __init__(
        self,
        score_batch: BatchScorer[Request, Answer],
        *,
        executor: Executor,
        metrics: InferenceMetrics,
        max_batch_size: int,
        max_delay_seconds: float,
        max_queue_size: int = 256,
        concurrent_batches: int = 1,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._score_batch = score_batch
        self._executor = executor
        self._metrics = metrics
        self._max_batch_size = max_batch_size
        self._max_delay_seconds = max_delay_seconds
        self._max_queue_size = max_queue_size
        self._clock = clock
        self._free_workers = asyncio.Semaphore(concurrent_batches)
        self._waiting: dict[str, _Waiting[Request, Answer]] = {}
        self._arrived = asyncio.Event()
        self._collector: asyncio.Task[None] | None = None
        self._batches: set[asyncio.Task[None]] = set()

    @property
    def queue_depth(self) -> int:
        """Requests waiting for a batch, not counting those being scored."""
        return len(self._waiting)

    async def start(self) -> None:
        """Begin forming batches on the running event loop."""
        self._collector = asyncio.create_task(self._collect(), name="batcher")

    async def stop(self) -> None:
        """Stop forming batches; fail whatever still waits or scores as not ready.

        A batch the model is still scoring is not waited for; its thread runs
        on, and its answers are dropped.
        """
        tasks = [t for t in (self._collector, *self._batches) if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._collector = None
        for waiting in self._waiting.values():
            if not waiting.future.done():
                waiting.future.set_exception(NotReadyError("the server is stopping"))
        self._waiting.clear()
        self._metrics.queue_depth.set(0)

    async def submit(
        self, request: Request, *, time_left_seconds: float | None = None
    ) -> Answer:
        """Queue ``request`` for the next batch and wait for its answer.

        ``time_left_seconds`` is how long the caller will wait; ``None`` for
        as long as it takes.
        """
        if self._collector is None:
            raise NotReadyError("the server is not taking requests")
        if request.request_id in self._waiting:
            raise ValueError(f"request id {request.request_id} is already waiting")
        deadline = None
        if time_left_seconds is not None:
            if time_left_seconds <= 0:
                self._metrics.dropped_requests.labels("deadline_exceeded").inc()
                raise DeadlineExceededError("the deadline passed before queueing")
            deadline = self._clock() + time_left_seconds
        if len(self._waiting) >= self._max_queue_size:
            self._metrics.shed_requests.inc()
            waiting_now = len(self._waiting)
            raise OverloadedError(
                f"the queue is full ({waiting_now} requests waiting); retry later"
            )

        loop = asyncio.get_running_loop()
        waiting = _Waiting[Request, Answer](
            request, loop.create_future(), loop.time(), deadline
        )
        self._waiting[request.request_id] = waiting
        self._metrics.queue_depth.set(len(self._waiting))
        self._arrived.set()
        try:
            return await waiting.future
        except asyncio.CancelledError:
            self._forget(waiting)
            raise

    def _forget(self, waiting: _Waiting[Request, Answer]) -> None:
        """Free the slot of a caller that went away, if it is still queued."""
        if self._waiting.get(waiting.request.request_id) is waiting:
            del self._waiting[waiting.request.request_id]
            self._metrics.queue_depth.set(len(self._waiting))
            self._metrics.dropped_requests.labels("cancelled").inc()

    async def _collect(self) -> None:
        while True:
            await self._free_workers.acquire()
            try:
                batch = await self._next_batch()
            except BaseException:
                self._free_workers.release()
                raise
            task = asyncio.create_task(self._score(batch))
            self._batches.add(task)
            task.add_done_callback(self._batches.discard)

    async def _next_batch(self) -> list[_Waiting[Request, Answer]]:
        """Wait until a batch is full or its oldest request has waited enough."""
        loop = asyncio.get_running_loop()
        while True:
            while not self._waiting:
                self._arrived.clear()
                await self._arrived.wait()
            oldest = next(iter(self._waiting.values()))
            flush_at = oldest.arrived_at + self._max_delay_seconds
            while len(self._waiting) < self._max_batch_size:
                remaining = flush_at - loop.time()
                if remaining <= 0 or not self._waiting:
                    break
                self._arrived.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._arrived.wait(), remaining)
            batch = self._take()
            if batch:
                return batch

    def _take(self) -> list[_Waiting[Request, Answer]]:
        """Remove up to one batch from the front of the queue; drop the expired."""
        batch: list[_Waiting[Request, Answer]] = []
        now = self._clock()
        while self._waiting and len(batch) < self._max_batch_size:
            waiting = self._waiting.pop(next(iter(self._waiting)))
            if waiting.deadline is not None and waiting.deadline <= now:
                self._metrics.dropped_requests.labels("deadline_exceeded").inc()
                _settle(
                    waiting.future,
                    DeadlineExceededError("the deadline passed while queued"),
                )
            else:
                batch.append(waiting)
        self._metrics.queue_depth.set(len(self._waiting))
        return batch

    async def _score(self, batch: list[_Waiting[Request, Answer]]) -> None:
        try:
            batch = [waiting for waiting in batch if not waiting.future.done()]
            if batch:
                answers = await self._scored(batch)
                for waiting in batch:
                    request_id = waiting.request.request_id
                    answer = answers.get(request_id)
                    if answer is None:
                        answer = MissingAnswerError(
                            f"no answer for request {request_id}"
                        )
                    _settle(waiting.future, answer)
        except asyncio.CancelledError:  # stopping: nobody will answer these callers
            stopped = NotReadyError("the server stopped before answering")
            for waiting in batch:
                _settle(waiting.future, stopped)
            raise
        finally:
            self._free_workers.release()

    async def _scored(
        self, batch: list[_Waiting[Request, Answer]]
    ) -> Mapping[str, Answer | Exception]:
        """The batch's answers by request id; one error for all if it failed."""
        loop = asyncio.get_running_loop()
        departed_at = loop.time()
        self._metrics.batch_size.observe(len(batch))
        for waiting in batch:
            self._metrics.queue_wait_seconds.observe(departed_at - waiting.arrived_at)

        requests = [waiting.request for waiting in batch]
        try:
            return await loop.run_in_executor(
                self._executor, self._score_batch, requests
            )
        except Exception as exc:  # the whole batch failed: every caller hears why
            return {request.request_id: exc for request in requests}
        finally:
            self._metrics.batch_scoring_seconds.observe(loop.time() - departed_at)


def _settle(future: asyncio.Future[Answer], answer: Answer | Exception) -> None:
    """Hand a caller its answer, unless it has gone away."""
    if future.done():
        return
    if isinstance(answer, Exception):
        future.set_exception(answer)
    else:
        future.set_result(answer)
