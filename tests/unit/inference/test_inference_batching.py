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
from inference.errors import InferenceError, InvalidRequestError, NotReadyError
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
) -> MicroBatcher[Query, str]:
    return MicroBatcher[Query, str](
        score_batch,
        executor=executor,
        metrics=metrics,
        max_batch_size=max_batch_size,
        max_delay_seconds=max_delay_seconds,
    )


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
