import asyncio
import dataclasses
import threading
from collections.abc import Awaitable, Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import pytest
from inference_fakes import count
from prometheus_client import CollectorRegistry

from inference.batching import MicroBatcher, MissingAnswerError
from inference.errors import (
    DeadlineExceededError,
    InferenceError,
    InvalidRequestError,
    NotReadyError,
    OverloadedError,
)
from inference.metrics import InferenceMetrics

T = TypeVar("T")
GUARD_SECONDS = 30.0  # only stops a broken batcher from hanging the suite


@dataclasses.dataclass(frozen=True)
class Query:
    request_id: str


Answers = Mapping[str, str | InferenceError]


class RecordingBatchScorer:
    """Answers ``answer for <id>`` and keeps each batch's ids and thread."""

    def __init__(self) -> None:
        self.batches: list[list[str]] = []
        self.threads: list[str] = []
        self.gate: threading.Event | None = None
        self.entered = threading.Event()

    def __call__(self, queries: Sequence[Query]) -> Answers:
        self.batches.append([query.request_id for query in queries])
        self.threads.append(threading.current_thread().name)
        self.entered.set()
        if self.gate is not None:
            self.gate.wait(GUARD_SECONDS)
        # Answers come back in the opposite order to the requests.
        return {q.request_id: f"answer for {q.request_id}" for q in reversed(queries)}


def run(test: Callable[[], Awaitable[T]]) -> T:
    async def guarded() -> T:
        return await asyncio.wait_for(test(), GUARD_SECONDS)

    return asyncio.run(guarded())


def batcher_for(
    score_batch: Callable[[Sequence[Query]], Answers],
    metrics: InferenceMetrics,
    executor: ThreadPoolExecutor,
    *,
    max_batch_size: int = 8,
    max_delay_seconds: float = 0.0,
    max_queue_size: int = 64,
    clock: Callable[[], float] | None = None,
) -> MicroBatcher[Query, str]:
    return MicroBatcher[Query, str](
        score_batch,
        executor=executor,
        metrics=metrics,
        max_batch_size=max_batch_size,
        max_delay_seconds=max_delay_seconds,
        max_queue_size=max_queue_size,
        clock=clock if clock is not None else FakeClock(),
    )


class FakeClock:
    """A clock for deadlines that moves only when a test moves it."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def executor() -> ThreadPoolExecutor:
    with ThreadPoolExecutor(1, thread_name_prefix="scoring") as pool:
        yield pool


def test_requests_arriving_together_are_scored_in_batches_of_the_maximum_size(
    metrics: InferenceMetrics,
    registry: CollectorRegistry,
    executor: ThreadPoolExecutor,
) -> None:
    scorer = RecordingBatchScorer()
    # The delay is far longer than the test: only full batches can leave.
    batcher = batcher_for(
        scorer, metrics, executor, max_batch_size=3, max_delay_seconds=600
    )

    async def six_callers() -> list[str]:
        await batcher.start()
        try:
            ids = [f"r{n}" for n in range(6)]
            return list(await asyncio.gather(*(batcher.submit(Query(i)) for i in ids)))
        finally:
            await batcher.stop()

    answers = run(six_callers)

    assert scorer.batches == [["r0", "r1", "r2"], ["r3", "r4", "r5"]]
    assert answers == [f"answer for r{n}" for n in range(6)]
    assert count(registry, "recops_inference_batch_size_count") == 2
    assert count(registry, "recops_inference_batch_size_sum") == 6
    assert count(registry, "recops_inference_queue_wait_seconds_count") == 6
    assert count(registry, "recops_inference_batch_scoring_seconds_count") == 2


def test_a_lone_request_leaves_once_its_delay_has_passed(
    metrics: InferenceMetrics, executor: ThreadPoolExecutor
) -> None:
    scorer = RecordingBatchScorer()
    batcher = batcher_for(
        scorer, metrics, executor, max_batch_size=64, max_delay_seconds=0.001
    )

    async def one_caller() -> str:
        await batcher.start()
        try:
            return await batcher.submit(Query("alone"))
        finally:
            await batcher.stop()

    assert run(one_caller) == "answer for alone"
    assert scorer.batches == [["alone"]]


def test_each_caller_gets_only_the_answer_named_by_its_request_id(
    metrics: InferenceMetrics, executor: ThreadPoolExecutor
) -> None:
    def answers_some(queries: Sequence[Query]) -> Answers:
        return {
            "a": "for a",
            "c": InvalidRequestError("c is malformed"),
            "stranger": "for nobody",
        }

    batcher = batcher_for(answers_some, metrics, executor)

    async def three_callers() -> list[object]:
        await batcher.start()
        try:
            calls = (batcher.submit(Query(i)) for i in ("a", "b", "c"))
            return await asyncio.gather(*calls, return_exceptions=True)
        finally:
            await batcher.stop()

    for_a, for_b, for_c = run(three_callers)

    assert for_a == "for a"
    assert isinstance(for_b, MissingAnswerError)
    assert isinstance(for_c, InvalidRequestError)
    assert str(for_c) == "c is malformed"


def test_a_batch_that_fails_whole_fails_every_caller_in_it(
    metrics: InferenceMetrics, executor: ThreadPoolExecutor
) -> None:
    def broken(queries: Sequence[Query]) -> Answers:
        raise RuntimeError("CUDA error: device-side assert triggered")

    batcher = batcher_for(broken, metrics, executor)

    async def two_callers() -> list[object]:
        await batcher.start()
        try:
            calls = (batcher.submit(Query(i)) for i in ("a", "b"))
            return await asyncio.gather(*calls, return_exceptions=True)
        finally:
            await batcher.stop()

    assert [type(outcome) for outcome in run(two_callers)] == [
        RuntimeError,
        RuntimeError,
    ]


def test_the_event_loop_keeps_taking_requests_while_a_batch_is_scored(
    metrics: InferenceMetrics,
    registry: CollectorRegistry,
    executor: ThreadPoolExecutor,
) -> None:
    scorer = RecordingBatchScorer()
    scorer.gate = threading.Event()
    batcher = batcher_for(scorer, metrics, executor)

    async def callers_behind_a_slow_batch() -> tuple[list[str], float]:
        await batcher.start()
        try:
            first = asyncio.create_task(batcher.submit(Query("first")))
            await asyncio.to_thread(scorer.entered.wait, GUARD_SECONDS)
            later = [asyncio.create_task(batcher.submit(Query(i))) for i in ("b", "c")]
            await asyncio.sleep(0)  # the loop runs the new callers at once
            depth_while_scoring = count(registry, "recops_inference_queue_depth")
            scorer.gate.set()
            return list(await asyncio.gather(first, *later)), depth_while_scoring
        finally:
            await batcher.stop()

    answers, depth_while_scoring = run(callers_behind_a_slow_batch)

    assert depth_while_scoring == 2
    assert answers == ["answer for first", "answer for b", "answer for c"]
    assert scorer.batches == [["first"], ["b", "c"]]
    assert all(name.startswith("scoring") for name in scorer.threads)
    assert count(registry, "recops_inference_queue_depth") == 0


def test_a_request_id_already_waiting_is_refused(
    metrics: InferenceMetrics, executor: ThreadPoolExecutor
) -> None:
    scorer = RecordingBatchScorer()
    batcher = batcher_for(scorer, metrics, executor, max_delay_seconds=600)

    async def same_id_twice() -> None:
        await batcher.start()
        try:
            waiting = asyncio.create_task(batcher.submit(Query("r1")))
            await asyncio.sleep(0)
            with pytest.raises(ValueError, match="already waiting"):
                await batcher.submit(Query("r1"))
            waiting.cancel()
        finally:
            await batcher.stop()

    run(same_id_twice)


def test_callers_whose_batch_is_still_scoring_at_stop_hear_not_ready(
    metrics: InferenceMetrics, executor: ThreadPoolExecutor
) -> None:
    scorer = RecordingBatchScorer()
    scorer.gate = threading.Event()
    batcher = batcher_for(scorer, metrics, executor)

    async def stop_while_scoring() -> object:
        await batcher.start()
        scoring = asyncio.create_task(batcher.submit(Query("slow")))
        await asyncio.to_thread(scorer.entered.wait, GUARD_SECONDS)
        try:
            await batcher.stop()
            (outcome,) = await asyncio.gather(scoring, return_exceptions=True)
        finally:
            scorer.gate.set()
        return outcome

    outcome = run(stop_while_scoring)

    assert isinstance(outcome, NotReadyError)
    assert outcome.retriable


def test_requests_before_start_or_still_waiting_at_stop_are_not_ready(
    metrics: InferenceMetrics, executor: ThreadPoolExecutor
) -> None:
    scorer = RecordingBatchScorer()
    batcher = batcher_for(scorer, metrics, executor, max_delay_seconds=600)

    async def around_the_lifecycle() -> tuple[object, object]:
        early = await asyncio.gather(
            batcher.submit(Query("early")), return_exceptions=True
        )
        await batcher.start()
        waiting = asyncio.create_task(batcher.submit(Query("late")))
        await asyncio.sleep(0)
        await batcher.stop()
        late = await asyncio.gather(waiting, return_exceptions=True)
        return early[0], late[0]

    early, late = run(around_the_lifecycle)

    assert isinstance(early, NotReadyError)
    assert isinstance(late, NotReadyError)
    assert scorer.batches == []


# Deadlines, cancellation and load shedding


def test_a_request_is_refused_at_once_when_the_queue_is_full(
    metrics: InferenceMetrics,
    registry: CollectorRegistry,
    executor: ThreadPoolExecutor,
) -> None:
    scorer = RecordingBatchScorer()
    batcher = batcher_for(
        scorer, metrics, executor, max_delay_seconds=600, max_queue_size=2
    )

    async def three_callers() -> None:
        await batcher.start()
        try:
            waiting = [
                asyncio.create_task(batcher.submit(Query(i))) for i in ("a", "b")
            ]
            await asyncio.sleep(0)
            with pytest.raises(
                OverloadedError, match=r"queue is full \(2 requests waiting\)"
            ) as shed:
                await batcher.submit(Query("c"))
            assert shed.value.retriable
            for task in waiting:
                task.cancel()
        finally:
            await batcher.stop()

    run(three_callers)

    assert count(registry, "recops_inference_shed_requests_total") == 1
    assert scorer.batches == []


def test_a_cancelled_caller_frees_its_slot_and_is_never_scored(
    metrics: InferenceMetrics,
    registry: CollectorRegistry,
    executor: ThreadPoolExecutor,
) -> None:
    scorer = RecordingBatchScorer()
    scorer.gate = threading.Event()
    batcher = batcher_for(scorer, metrics, executor, max_queue_size=1)

    async def a_caller_gives_up() -> list[str]:
        await batcher.start()
        try:
            busy = asyncio.create_task(batcher.submit(Query("busy")))
            await asyncio.to_thread(scorer.entered.wait, GUARD_SECONDS)
            gives_up = asyncio.create_task(batcher.submit(Query("gives-up")))
            await asyncio.sleep(0)
            gives_up.cancel()
            await asyncio.gather(gives_up, return_exceptions=True)
            # The one slot is free again, so this caller is not refused.
            after = asyncio.create_task(batcher.submit(Query("after")))
            await asyncio.sleep(0)
            scorer.gate.set()
            return list(await asyncio.gather(busy, after))
        finally:
            await batcher.stop()

    answers = run(a_caller_gives_up)

    assert answers == ["answer for busy", "answer for after"]
    assert scorer.batches == [["busy"], ["after"]]
    assert count(registry, "recops_inference_shed_requests_total") == 0
    assert (
        count(registry, "recops_inference_dropped_requests_total", reason="cancelled")
        == 1
    )


def test_a_request_whose_deadline_passes_while_queued_is_dropped_before_scoring(
    metrics: InferenceMetrics,
    registry: CollectorRegistry,
    executor: ThreadPoolExecutor,
) -> None:
    clock = FakeClock()
    scorer = RecordingBatchScorer()
    scorer.gate = threading.Event()
    batcher = batcher_for(scorer, metrics, executor, clock=clock)

    async def one_caller_runs_out_of_time() -> list[object]:
        await batcher.start()
        try:
            first = asyncio.create_task(batcher.submit(Query("first")))
            await asyncio.to_thread(scorer.entered.wait, GUARD_SECONDS)
            hurried = asyncio.create_task(
                batcher.submit(Query("hurried"), time_left_seconds=0.5)
            )
            patient = asyncio.create_task(
                batcher.submit(Query("patient"), time_left_seconds=5.0)
            )
            await asyncio.sleep(0)
            clock.now += 1.0
            scorer.gate.set()
            return await asyncio.gather(first, hurried, patient, return_exceptions=True)
        finally:
            await batcher.stop()

    first, hurried, patient = run(one_caller_runs_out_of_time)

    assert first == "answer for first"
    assert isinstance(hurried, DeadlineExceededError)
    assert patient == "answer for patient"
    assert scorer.batches == [["first"], ["patient"]]
    assert (
        count(
            registry,
            "recops_inference_dropped_requests_total",
            reason="deadline_exceeded",
        )
        == 1
    )


@pytest.mark.parametrize("time_left_seconds", [0.0, -2.0])
def test_a_request_arriving_with_no_time_left_is_never_queued(
    metrics: InferenceMetrics, executor: ThreadPoolExecutor, time_left_seconds: float
) -> None:
    scorer = RecordingBatchScorer()
    batcher = batcher_for(scorer, metrics, executor)

    async def late_caller() -> None:
        await batcher.start()
        try:
            with pytest.raises(DeadlineExceededError):
                await batcher.submit(Query("late"), time_left_seconds=time_left_seconds)
            assert batcher.queue_depth == 0
        finally:
            await batcher.stop()

    run(late_caller)

    assert scorer.batches == []
