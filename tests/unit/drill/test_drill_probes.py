import time
from collections.abc import Callable, Iterator
from concurrent import futures
from datetime import UTC, datetime

import grpc
import pytest
from recops.v1 import storefront_pb2, storefront_pb2_grpc

from drill.probes import (
    Attempt,
    EventProbe,
    FlowRecord,
    GrpcRecommendClient,
    ProbePurchase,
    RecommendProbe,
    recovered_at,
)
from eventbus.contracts import BehaviourEvent, BehaviourType


def attempt(started: float, ok: bool, latency: float = 0.01) -> Attempt:
    outcome = "ok" if ok else "UNAVAILABLE"
    return Attempt(started_at=started, finished_at=started + latency, outcome=outcome)


def test_a_flow_recovers_at_the_first_of_enough_successes_in_a_row() -> None:
    attempts = [
        attempt(9.0, ok=True),
        attempt(10.1, ok=False),
        attempt(10.2, ok=True),
        attempt(10.3, ok=False),
        attempt(10.4, ok=True, latency=0.05),
        attempt(10.5, ok=True),
        attempt(10.6, ok=True),
    ]

    assert recovered_at(attempts, since=10.0, streak=3) == pytest.approx(10.45)


def test_successes_before_the_revert_do_not_count_as_recovery() -> None:
    attempts = [attempt(t, ok=True) for t in (8.0, 8.5, 9.0)] + [attempt(10.5, False)]

    assert recovered_at(attempts, since=10.0, streak=1) is None


class AcknowledgingSender:
    """Acknowledges every event on the next serve, like a healthy cluster."""

    def __init__(self) -> None:
        self.events: list[BehaviourEvent] = []
        self.pending: list[Callable[[str], None]] = []

    def send(self, event: BehaviourEvent, on_result: Callable[[str], None]) -> None:
        self.events.append(event)
        self.pending.append(on_result)

    def serve(self, timeout_seconds: float) -> None:
        while self.pending:
            self.pending.pop(0)("ok")
        time.sleep(timeout_seconds)

    def drain(self, timeout_seconds: float) -> int:
        self.serve(0)
        return 0


def test_the_event_probe_sends_valid_unique_purchases_marked_with_the_drill() -> None:
    sender = AcknowledgingSender()
    probe = EventProbe(
        sender=sender,
        drill_id="d-7",
        purchase=ProbePurchase(user_id="17850", item_id="85123A", price=2.55),
        events_per_second=100,
        record=FlowRecord("events"),
    )

    probe.start()
    time.sleep(0.2)
    unresolved = probe.stop(drain_seconds=1)

    ids = [event.event_id for event in sender.events]
    assert unresolved == 0
    assert len(ids) >= 5
    assert len(set(ids)) == len(ids)
    assert probe.acknowledged_ids() == set(ids)
    first = sender.events[0]
    assert first.source == "drill:d-7"
    assert first.type == BehaviourType.BEHAVIOUR_TYPE_PURCHASE
    assert (first.user_id, first.item_id, first.quantity) == ("17850", "85123A", 1)
    age = datetime.now(UTC) - first.event_time.ToDatetime(tzinfo=UTC)
    assert age.total_seconds() < 5


def test_the_event_probe_keeps_a_steady_rate() -> None:
    sender = AcknowledgingSender()
    probe = EventProbe(
        sender=sender,
        drill_id="d-8",
        purchase=ProbePurchase(user_id="17850", item_id="85123A", price=2.55),
        events_per_second=50,
        record=FlowRecord("events"),
    )

    probe.start()
    time.sleep(1.0)
    probe.stop(drain_seconds=1)

    assert 40 <= len(sender.events) <= 55


class SlowForOneShopper(storefront_pb2_grpc.StorefrontServicer):
    def Recommend(
        self, request: storefront_pb2.RecommendRequest, context: grpc.ServicerContext
    ) -> storefront_pb2.RecommendResponse:
        if request.user_id == "slow":
            time.sleep(0.5)
        if request.user_id == "":
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "empty user id")
        item = storefront_pb2.ScoredItem(item_id="85123A", score=1.0)
        return storefront_pb2.RecommendResponse(items=[item] * request.k)


@pytest.fixture
def storefront() -> Iterator[str]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    storefront_pb2_grpc.add_StorefrontServicer_to_server(SlowForOneShopper(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.stop(grace=None)


def test_the_grpc_client_names_each_answer_by_its_status(storefront: str) -> None:
    client = GrpcRecommendClient(storefront)
    try:
        outcomes = [
            client.recommend(user, k=10, deadline_seconds=0.2)
            for user in ("17841", "slow", "")
        ]
    finally:
        client.close()

    assert outcomes == ["ok", "DEADLINE_EXCEEDED", "INVALID_ARGUMENT"]


def test_the_request_probe_records_each_answer_with_its_latency(
    storefront: str,
) -> None:
    record = FlowRecord("requests")
    probe = RecommendProbe(
        client=GrpcRecommendClient(storefront),
        user_ids=["17841", "slow"],
        k=10,
        deadline_seconds=0.2,
        requests_per_second=20,
        record=record,
    )

    probe.start()
    time.sleep(0.8)
    probe.stop()

    attempts = record.attempts()
    assert {a.outcome for a in attempts} == {"ok", "DEADLINE_EXCEEDED"}
    slow = [a for a in attempts if not a.ok]
    assert all(0.15 <= a.latency_seconds < 0.5 for a in slow)
