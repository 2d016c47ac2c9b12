"""Probes: steady streams of real work whose outcomes a drill judges.

The event probe sends purchases to BEHAVIOUR_EVENTS through an idempotent
``acks=all`` producer and notes which were acknowledged; the request probe
asks the storefront for recommendations. Each keeps a :class:`FlowRecord` of
attempts, from which the drill reads latency, failures and recovery time.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Protocol

import grpc
from confluent_kafka import KafkaError, Message, Producer
from recops.v1 import storefront_pb2

from eventbus import encode
from eventbus.contracts import BehaviourEvent, BehaviourType

logger = logging.getLogger(__name__)

OK = "ok"


@dataclasses.dataclass(frozen=True, kw_only=True)
class Attempt:
    """One probe try, timed in monotonic seconds, and how it ended."""

    started_at: float
    finished_at: float
    outcome: str

    @property
    def ok(self) -> bool:
        return self.outcome == OK

    @property
    def latency_seconds(self) -> float:
        return self.finished_at - self.started_at


AttemptObserver = Callable[[str, Attempt], None]


class FlowRecord:
    """The attempts of one flow, safe to read while a probe adds to it."""

    def __init__(self, flow: str, observer: AttemptObserver | None = None) -> None:
        self.flow = flow
        self._observer = observer
        self._attempts: list[Attempt] = []
        self._lock = threading.Lock()

    def add(self, attempt: Attempt) -> None:
        with self._lock:
            self._attempts.append(attempt)
        if self._observer is not None:
            self._observer(self.flow, attempt)

    def attempts(self) -> list[Attempt]:
        """Every attempt so far, in the order they started."""
        with self._lock:
            return sorted(self._attempts, key=lambda attempt: attempt.started_at)


def recovered_at(
    attempts: Sequence[Attempt], *, since: float, streak: int
) -> float | None:
    """When a flow was healthy again after ``since``, or None if it was not.

    Healthy means ``streak`` attempts in a row, started at or after ``since``,
    succeeded; the flow counts as healthy from the end of the first of them.
    """
    run, first_finish = 0, 0.0
    for attempt in attempts:
        if attempt.started_at < since:
            continue
        if not attempt.ok:
            run = 0
            continue
        if run == 0:
            first_finish = attempt.finished_at
        run += 1
        if run >= streak:
            return first_finish
    return None


def within(attempts: Sequence[Attempt], start: float, end: float) -> list[Attempt]:
    """The attempts started between ``start`` and ``end``."""
    return [a for a in attempts if start <= a.started_at <= end]


class PacedLoop:
    """Calls ``step`` ``per_second`` times a second on a thread of its own.

    Between steps it hands the spare time to ``wait``, which lets a producer
    serve its delivery callbacks. Slots missed by a slow step are skipped, not
    made up in a burst.
    """

    def __init__(
        self,
        name: str,
        *,
        per_second: float,
        step: Callable[[], None],
        wait: Callable[[float], None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._interval = 1.0 / per_second
        self._step = step
        self._wait = wait
        self._clock = clock
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _loop(self) -> None:
        next_at = self._clock()
        while not self._stop.is_set():
            self._step()
            next_at = max(next_at + self._interval, self._clock())
            while not self._stop.is_set() and (left := next_at - self._clock()) > 0:
                self._wait(min(left, 0.1))


class EventSender(Protocol):
    """Sends behaviour events and reports each one's fate."""

    def send(self, event: BehaviourEvent, on_result: Callable[[str], None]) -> None:
        """Send one event; ``on_result`` later gets ``"ok"`` or an error name."""
        ...

    def serve(self, timeout_seconds: float) -> None:
        """Deliver pending results to their callbacks, waiting up to a timeout."""
        ...

    def drain(self, timeout_seconds: float) -> int:
        """Wait for every pending result; return how many are still pending."""
        ...


class KafkaEventSender:
    """Sends events to one topic through a producer, keyed by shopper."""

    def __init__(self, producer: Producer, topic: str) -> None:
        self._producer = producer
        self._topic = topic

    def send(self, event: BehaviourEvent, on_result: Callable[[str], None]) -> None:
        value, encoded_headers = encode(event)
        headers: list[tuple[str, str | bytes | None]] = list(encoded_headers)

        def on_delivery(error: KafkaError | None, _: Message) -> None:
            on_result(OK if error is None else str(error.name()))

        try:
            self._producer.produce(
                self._topic,
                value=value,
                key=event.user_id.encode(),
                headers=headers,
                on_delivery=on_delivery,
            )
        except BufferError:
            on_result("queue_full")

    def serve(self, timeout_seconds: float) -> None:
        self._producer.poll(timeout_seconds)

    def drain(self, timeout_seconds: float) -> int:
        return self._producer.flush(timeout_seconds)


@dataclasses.dataclass(frozen=True, kw_only=True)
class ProbePurchase:
    """What the event probe buys, as a real shopper would."""

    user_id: str
    item_id: str
    price: float


class EventProbe:
    """Sends one probe purchase after another and records acknowledgements.

    Event ids are ``<drill_id>-<n>``, the source is ``drill:<drill_id>``, so
    the drill can find exactly its own events among everything ingested.
    """

    def __init__(
        self,
        *,
        sender: EventSender,
        drill_id: str,
        purchase: ProbePurchase,
        events_per_second: float,
        record: FlowRecord,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.source = f"drill:{drill_id}"
        self.record = record
        self._sender = sender
        self._drill_id = drill_id
        self._purchase = purchase
        self._clock = clock
        self._sent = 0
        self._acknowledged: set[str] = set()
        self._lock = threading.Lock()
        self._loop = PacedLoop(
            f"event-probe-{drill_id}",
            per_second=events_per_second,
            step=self._send_one,
            wait=sender.serve,
            clock=clock,
        )

    @property
    def sent(self) -> int:
        return self._sent

    def acknowledged_ids(self) -> set[str]:
        with self._lock:
            return set(self._acknowledged)

    def start(self) -> None:
        self._loop.start()

    def stop(self, *, drain_seconds: float) -> int:
        """Stop sending, wait for outstanding results; return those unresolved."""
        self._loop.stop()
        return self._sender.drain(drain_seconds)

    def _send_one(self) -> None:
        event = self._event(f"{self._drill_id}-{self._sent:06d}")
        started = self._clock()

        def on_result(outcome: str) -> None:
            if outcome == OK:
                with self._lock:
                    self._acknowledged.add(event.event_id)
            finished = self._clock()
            self.record.add(
                Attempt(started_at=started, finished_at=finished, outcome=outcome)
            )

        self._sent += 1
        self._sender.send(event, on_result)

    def _event(self, event_id: str) -> BehaviourEvent:
        event = BehaviourEvent(
            event_id=event_id,
            type=BehaviourType.BEHAVIOUR_TYPE_PURCHASE,
            user_id=self._purchase.user_id,
            item_id=self._purchase.item_id,
            quantity=1,
            price=self._purchase.price,
            source=self.source,
            session_id=f"drill-{self._drill_id}",
            country="United Kingdom",
        )
        event.event_time.FromDatetime(datetime.now(UTC))
        return event


class RecommendClient(Protocol):
    """Asks the storefront for recommendations."""

    def recommend(self, user_id: str, k: int, deadline_seconds: float) -> str:
        """Ask once; return ``"ok"`` or the failure's status name."""
        ...

    def close(self) -> None:
        """Let go of the connection."""
        ...


class GrpcRecommendClient:
    """Calls ``recops.v1.Storefront/Recommend`` over one channel."""

    def __init__(self, target: str) -> None:
        self._channel = grpc.insecure_channel(target)
        self._recommend = self._channel.unary_unary(
            "/recops.v1.Storefront/Recommend",
            request_serializer=storefront_pb2.RecommendRequest.SerializeToString,
            response_deserializer=storefront_pb2.RecommendResponse.FromString,
        )

    def recommend(self, user_id: str, k: int, deadline_seconds: float) -> str:
        request = storefront_pb2.RecommendRequest(user_id=user_id, k=k)
        try:
            self._recommend(request, timeout=deadline_seconds)
        except grpc.RpcError as exc:
            return str(exc.code().name)
        return OK

    def close(self) -> None:
        self._channel.close()


class RecommendProbe:
    """Asks for recommendations at a steady rate and records each answer."""

    def __init__(
        self,
        *,
        client: RecommendClient,
        user_ids: Sequence[str],
        k: int,
        deadline_seconds: float,
        requests_per_second: float,
        record: FlowRecord,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.record = record
        self._client = client
        self._user_ids = list(user_ids)
        self._k = k
        self._deadline_seconds = deadline_seconds
        self._clock = clock
        self._asked = 0
        self._loop = PacedLoop(
            "recommend-probe",
            per_second=requests_per_second,
            step=self._ask_one,
            wait=time.sleep,
            clock=clock,
        )

    def start(self) -> None:
        self._loop.start()

    def stop(self) -> None:
        self._loop.stop()
        self._client.close()

    def _ask_one(self) -> None:
        user_id = self._user_ids[self._asked % len(self._user_ids)]
        self._asked += 1
        started = self._clock()
        outcome = self._client.recommend(user_id, self._k, self._deadline_seconds)
        finished = self._clock()
        self.record.add(
            Attempt(started_at=started, finished_at=finished, outcome=outcome)
        )
