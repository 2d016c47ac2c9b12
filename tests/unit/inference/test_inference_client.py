from collections.abc import Callable, Iterator
from concurrent import futures

import grpc
import pytest
from recops.v1 import storefront_pb2, storefront_pb2_grpc

from inference.client import RetryPolicy, StorefrontClient, call_with_retries

POLICY = RetryPolicy(max_attempts=5, first_backoff_seconds=0.1, max_backoff_seconds=0.4)


class Refusal(grpc.RpcError):
    """A failed call as the gRPC library raises it."""

    def __init__(self, code: grpc.StatusCode) -> None:
        super().__init__(code.name)
        self._code = code

    def code(self) -> grpc.StatusCode:
        return self._code


class FakeClock:
    """Time that moves only when the code under test sleeps or a call lasts."""

    def __init__(self) -> None:
        self.now = 100.0
        self.pauses: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.pauses.append(seconds)
        self.now += seconds


class ScriptedCall:
    """Refuses with the given codes in turn, then answers; notes each timeout."""

    def __init__(
        self, clock: FakeClock, codes: list[grpc.StatusCode], lasts_seconds: float = 0
    ) -> None:
        self.clock = clock
        self.codes: Iterator[grpc.StatusCode] = iter(codes)
        self.lasts_seconds = lasts_seconds
        self.timeouts: list[float] = []

    def __call__(self, timeout_seconds: float) -> str:
        self.timeouts.append(timeout_seconds)
        self.clock.now += self.lasts_seconds
        code = next(self.codes, None)
        if code is not None:
            raise Refusal(code)
        return "answer"


def run(
    call: Callable[[float], str],
    clock: FakeClock,
    deadline_seconds: float = 10.0,
    policy: RetryPolicy = POLICY,
) -> str:
    return call_with_retries(
        call,
        deadline_seconds=deadline_seconds,
        policy=policy,
        clock=clock,
        sleep=clock.sleep,
        jitter=lambda: 1.0,
    )


@pytest.mark.parametrize(
    "code", [grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED]
)
def test_a_passing_refusal_is_tried_again_after_a_growing_pause(
    code: grpc.StatusCode,
) -> None:
    clock = FakeClock()
    call = ScriptedCall(clock, [code, code, code, code])

    assert run(call, clock) == "answer"
    assert len(call.timeouts) == 5
    assert clock.pauses == pytest.approx([0.1, 0.2, 0.4, 0.4])


@pytest.mark.parametrize(
    "code",
    [
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.INTERNAL,
    ],
)
def test_a_refusal_that_will_not_pass_is_raised_at_once(
    code: grpc.StatusCode,
) -> None:
    clock = FakeClock()
    call = ScriptedCall(clock, [code])

    with pytest.raises(grpc.RpcError) as raised:
        run(call, clock)

    assert raised.value.code() is code
    assert len(call.timeouts) == 1
    assert clock.pauses == []


def test_retries_stop_after_the_policys_attempts() -> None:
    clock = FakeClock()
    call = ScriptedCall(clock, [grpc.StatusCode.UNAVAILABLE] * 10)

    with pytest.raises(grpc.RpcError):
        run(call, clock, policy=RetryPolicy(max_attempts=3))

    assert len(call.timeouts) == 3


def test_each_try_gets_only_the_time_left_before_the_deadline() -> None:
    clock = FakeClock()
    unavailable = grpc.StatusCode.UNAVAILABLE
    call = ScriptedCall(clock, [unavailable, unavailable], lasts_seconds=0.05)

    run(call, clock, deadline_seconds=1.0)

    # 1.0; then 1.0 - 0.05 - 0.1; then that - 0.05 - 0.2
    assert call.timeouts == pytest.approx([1.0, 0.85, 0.6])


def test_no_pause_runs_past_the_deadline() -> None:
    clock = FakeClock()
    started = clock.now
    call = ScriptedCall(clock, [grpc.StatusCode.RESOURCE_EXHAUSTED] * 10)

    with pytest.raises(grpc.RpcError) as raised:
        run(call, clock, deadline_seconds=0.35)

    assert raised.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert clock.pauses == pytest.approx([0.1, 0.2])
    assert clock.now - started <= 0.35


def test_the_pause_is_jittered_between_half_and_all_of_the_backoff() -> None:
    policy = RetryPolicy(first_backoff_seconds=0.2, max_backoff_seconds=1.0)

    assert policy.backoff_seconds(1, 0.0) == pytest.approx(0.1)
    assert policy.backoff_seconds(2, 0.5) == pytest.approx(0.3)


def test_a_policy_without_attempts_is_refused() -> None:
    with pytest.raises(ValueError, match="max_attempts"):
        RetryPolicy(max_attempts=0)


class FlakyStorefront(storefront_pb2_grpc.StorefrontServicer):
    """Answers Recommend after refusing it with the given codes in turn."""

    def __init__(self, codes: list[grpc.StatusCode]) -> None:
        self.codes = iter(codes)
        self.calls = 0

    def Recommend(
        self, request: storefront_pb2.RecommendRequest, context: grpc.ServicerContext
    ) -> storefront_pb2.RecommendResponse:
        self.calls += 1
        code = next(self.codes, None)
        if code is not None:
            context.abort(code, f"refused with {code.name}")
        return storefront_pb2.RecommendResponse(model_version="v1")


def serve(servicer: FlakyStorefront) -> tuple[grpc.Server, str]:
    server = grpc.server(futures.ThreadPoolExecutor(2))
    storefront_pb2_grpc.add_StorefrontServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    return server, f"127.0.0.1:{port}"


FAST = RetryPolicy(first_backoff_seconds=0.001, max_backoff_seconds=0.002)


def test_the_client_retries_a_shedding_server_until_it_answers() -> None:
    storefront = FlakyStorefront([grpc.StatusCode.RESOURCE_EXHAUSTED] * 2)
    server, target = serve(storefront)
    try:
        with StorefrontClient(target, deadline_seconds=10, retry=FAST) as client:
            answer = client.recommend("17850", 5)
    finally:
        server.stop(None)

    assert answer.model_version == "v1"
    assert storefront.calls == 3


def test_the_client_raises_an_invalid_argument_without_retrying() -> None:
    storefront = FlakyStorefront([grpc.StatusCode.INVALID_ARGUMENT] * 2)
    server, target = serve(storefront)
    try:
        with (
            StorefrontClient(target, deadline_seconds=10, retry=FAST) as client,
            pytest.raises(grpc.RpcError) as raised,
        ):
            client.recommend("", 5)
    finally:
        server.stop(None)

    assert raised.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert storefront.calls == 1
