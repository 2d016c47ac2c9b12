"""A small client for the storefront API, with a deadline on every call.

A call that the service refuses for a while (``UNAVAILABLE`` while no model
has loaded or the server restarts, ``RESOURCE_EXHAUSTED`` while it sheds
load) is tried again after a growing, jittered pause, but never past the
call's deadline: the last refusal is raised once the next try could not
finish in time. Any other status, ``INVALID_ARGUMENT`` above all, is raised
at once. For a product page::

    import grpc
    from inference.client import RetryPolicy, StorefrontClient

    retry = RetryPolicy(max_attempts=3, first_backoff_seconds=0.02)
    with StorefrontClient("inference:50051", retry=retry) as client:
        try:
            answer = client.recommend("17850", k=8, deadline_seconds=0.15)
        except grpc.RpcError:
            answer = None  # show the page without recommendations

``python -m inference.client USER_ID [-k 10] [--exclude ITEM ...]`` prints one
Recommend answer as JSON.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import random
import sys
import time
from collections.abc import Callable, Iterable
from types import TracebackType
from typing import Any, TypeVar

import grpc
from recops.v1 import storefront_pb2, storefront_pb2_grpc

logger = logging.getLogger(__name__)

DEFAULT_TARGET = "127.0.0.1:50051"
RETRIABLE_CODES = frozenset(
    {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED}
)

Answer = TypeVar("Answer")


@dataclasses.dataclass(frozen=True, kw_only=True)
class RetryPolicy:
    """How often and how patiently a refused call is tried again.

    The pause before try ``n + 1`` is ``first_backoff_seconds * multiplier **
    (n - 1)``, at most ``max_backoff_seconds``, scaled by a random factor
    between one half and one so that many clients do not retry in step.
    ``max_attempts`` 1 turns retries off.
    """

    max_attempts: int = 4
    first_backoff_seconds: float = 0.025
    max_backoff_seconds: float = 0.5
    multiplier: float = 2.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.first_backoff_seconds < 0 or self.max_backoff_seconds < 0:
            raise ValueError("backoff seconds must not be negative")
        if self.multiplier < 1:
            raise ValueError("multiplier must be at least 1")

    def backoff_seconds(self, attempt: int, jitter: float) -> float:
        """The pause after failed try ``attempt`` (from 1), ``jitter`` in [0, 1)."""
        growth = self.first_backoff_seconds * self.multiplier ** (attempt - 1)
        return min(growth, self.max_backoff_seconds) * (0.5 + jitter / 2)


def call_with_retries(
    call: Callable[[float], Answer],
    *,
    deadline_seconds: float,
    policy: RetryPolicy,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    jitter: Callable[[], float] = random.random,
) -> Answer:
    """``call(timeout_seconds)``, tried again on a retriable refusal.

    Every try gets only the time left before the deadline, and no pause
    runs into it.
    """
    deadline = clock() + deadline_seconds
    attempt = 1
    while True:
        try:
            return call(max(deadline - clock(), 0.0))
        except grpc.RpcError as exc:
            if exc.code() not in RETRIABLE_CODES or attempt >= policy.max_attempts:
                raise
            pause = policy.backoff_seconds(attempt, jitter())
            if clock() + pause >= deadline:
                raise
            logger.warning(
                "call refused, trying again: %s",
                exc.code().name,
                extra={"attempt": attempt, "backoff_seconds": round(pause, 4)},
            )
            sleep(pause)
        attempt += 1


# The generated gRPC module carries no annotations; give its stub a type.
_new_stub: Callable[[grpc.Channel], Any] = storefront_pb2_grpc.StorefrontStub


class StorefrontClient:
    """Calls ``recops.v1.Storefront`` over one channel.

    Failed calls raise :class:`grpc.RpcError`; a call that outlives
    ``deadline_seconds``, retries included, fails with ``DEADLINE_EXCEEDED``
    or the last retriable refusal.
    """

    def __init__(
        self,
        target: str = DEFAULT_TARGET,
        *,
        deadline_seconds: float = 1.0,
        retry: RetryPolicy = RetryPolicy(),
    ) -> None:
        self.deadline_seconds = deadline_seconds
        self.retry = retry
        self._channel = grpc.insecure_channel(target)
        self._stub = _new_stub(self._channel)

    def recommend(
        self,
        user_id: str,
        k: int,
        exclude: Iterable[str] = (),
        *,
        deadline_seconds: float | None = None,
    ) -> storefront_pb2.RecommendResponse:
        """The ``k`` products ``user_id`` is most likely to buy next."""
        request = storefront_pb2.RecommendRequest(
            user_id=user_id, k=k, exclude=list(exclude)
        )
        timeout = (
            deadline_seconds if deadline_seconds is not None else self.deadline_seconds
        )

        def once(timeout_seconds: float) -> storefront_pb2.RecommendResponse:
            response: storefront_pb2.RecommendResponse = self._stub.Recommend(
                request, timeout=timeout_seconds
            )
            return response

        return call_with_retries(once, deadline_seconds=timeout, policy=self.retry)

    def close(self) -> None:
        """Close the channel."""
        self._channel.close()

    def __enter__(self) -> StorefrontClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m inference.client")
    parser.add_argument("user_id")
    parser.add_argument("-k", type=int, default=10)
    parser.add_argument("--exclude", nargs="*", default=[])
    parser.add_argument("--target", default=DEFAULT_TARGET)
    parser.add_argument("--deadline-seconds", type=float, default=1.0)
    args = parser.parse_args(argv)

    with StorefrontClient(
        args.target, deadline_seconds=args.deadline_seconds
    ) as client:
        try:
            response = client.recommend(args.user_id, args.k, args.exclude)
        except grpc.RpcError as exc:
            print(json.dumps({"code": exc.code().name, "details": exc.details()}))
            return 1
    answer = {
        "model_version": response.model_version,
        "request_id": response.request_id,
        "fallback": response.fallback,
        "items": [
            {"item_id": i.item_id, "score": i.score, "description": i.description}
            for i in response.items
        ],
    }
    print(json.dumps(answer))
    return 0


if __name__ == "__main__":
    sys.exit(main())
