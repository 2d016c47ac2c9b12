"""A small client for the storefront API, with a deadline on every call.

``python -m inference.client USER_ID [-k 10] [--exclude ITEM ...]`` prints one
Recommend answer as JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterable
from types import TracebackType
from typing import Any

import grpc
from recops.v1 import storefront_pb2, storefront_pb2_grpc

DEFAULT_TARGET = "127.0.0.1:50051"

# The generated gRPC module carries no annotations; give its stub a type.
_new_stub: Callable[[grpc.Channel], Any] = storefront_pb2_grpc.StorefrontStub


class StorefrontClient:
    """Calls ``recops.v1.Storefront`` over one channel.

    Failed calls raise :class:`grpc.RpcError`; a call that outlives
    ``deadline_seconds`` fails with ``DEADLINE_EXCEEDED``.
    """

    def __init__(
        self, target: str = DEFAULT_TARGET, *, deadline_seconds: float = 1.0
    ) -> None:
        self.deadline_seconds = deadline_seconds
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
        response: storefront_pb2.RecommendResponse = self._stub.Recommend(
            request, timeout=timeout
        )
        return response

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
