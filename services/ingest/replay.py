"""Replay the shop's order history as behaviour events.

    python -m ingest.replay [--data PATH] [--speedup N | --as-fast-as-possible]
                            [--limit N] [--content-type protobuf|json]

Every line of the retail CSV becomes one BehaviourEvent on the raw topic: a
purchase, or a return for a cancelled invoice. With ``--speedup N`` events go
out N times faster than the shop's original timeline; by default as fast as
the cluster takes them. Each acknowledgement is counted, and a JSON summary
line is printed at the end.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import gzip
import json
import logging
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import datetime
from pathlib import Path
from types import FrameType
from typing import Protocol
from zoneinfo import ZoneInfo

from confluent_kafka import KafkaError, Message, Producer

from eventbus import ContentType, KafkaSettings, Topic, decode, encode
from eventbus.contracts import BehaviourEvent, BehaviourType
from eventbus.keys import shopper_key
from eventbus.logs import configure_logging
from ingest.settings import REPO
from ingest.triage import RecordHeaders, header_pairs

logger = logging.getLogger(__name__)

DeliveryCallback = Callable[[KafkaError | None, Message], None]

DEFAULT_DATA = REPO.parent / "shared/data/online-retail/transactions.csv.gz"
SHOP_ZONE = ZoneInfo("Europe/London")
SOURCE = "replay"
FLUSH_TIMEOUT_SECONDS = 180.0
POLL_EVERY_EVENTS = 2_000
COLUMNS = (
    "InvoiceNo",
    "StockCode",
    "Description",
    "Quantity",
    "InvoiceDate",
    "UnitPrice",
    "CustomerID",
    "Country",
)
THROUGHPUT_OVERRIDES: dict[str, object] = {
    "linger.ms": 50,
    "batch.num.messages": 10_000,
    "batch.size": 1_000_000,
    "queue.buffering.max.messages": 500_000,
    "queue.buffering.max.kbytes": 1_048_576,
}


class ShopClock:
    """Turns the shop's local invoice times into epoch seconds, remembering each."""

    def __init__(self, zone: ZoneInfo = SHOP_ZONE) -> None:
        self._zone = zone
        self._seconds: dict[str, int] = {}

    def epoch_seconds(self, invoice_date: str) -> int:
        seconds = self._seconds.get(invoice_date)
        if seconds is None:
            local = datetime.fromisoformat(invoice_date).replace(tzinfo=self._zone)
            seconds = self._seconds[invoice_date] = int(local.timestamp())
        return seconds


def event_from_row(
    row: Sequence[str], line_number: int, clock: ShopClock
) -> BehaviourEvent:
    """The behaviour event one CSV line of the retail data stands for."""
    (
        invoice,
        stock_code,
        description,
        quantity,
        invoice_date,
        price,
        customer,
        country,
    ) = row
    event = BehaviourEvent(
        event_id=f"{invoice}-{line_number}",
        type=(
            BehaviourType.BEHAVIOUR_TYPE_RETURN
            if invoice.startswith("C")
            else BehaviourType.BEHAVIOUR_TYPE_PURCHASE
        ),
        user_id=customer.removesuffix(".0"),
        item_id=stock_code,
        item_description=description,
        quantity=int(quantity),
        price=float(price),
        session_id=invoice,
        country=country,
        source=SOURCE,
    )
    event.event_time.seconds = clock.epoch_seconds(invoice_date)
    return event


def read_lines(path: Path, limit: int | None = None) -> Iterator[tuple[int, list[str]]]:
    """Each data line of the CSV with its line number in the file (header is 1)."""
    with gzip.open(path, "rt", newline="", encoding="utf-8") as stream:
        reader = csv.reader(stream)
        header = next(reader, None)
        if header is None or tuple(header) != COLUMNS:
            raise ValueError(f"{path} does not start with the columns {COLUMNS}")
        for count, row in enumerate(reader):
            if limit is not None and count >= limit:
                return
            yield reader.line_num, row


class EventProducer(Protocol):
    """The producer calls the replay makes."""

    def produce(
        self,
        topic: str,
        *,
        value: bytes,
        key: bytes,
        headers: RecordHeaders,
        on_delivery: DeliveryCallback,
    ) -> None: ...
    def poll(self, timeout: float) -> int: ...
    def flush(self, timeout: float) -> int: ...


@dataclasses.dataclass
class ReplaySummary:
    """What one replay sent and what the cluster acknowledged."""

    events_sent: int = 0
    events_acknowledged: int = 0
    events_failed: int = 0
    lines_skipped: int = 0
    seconds: float = 0.0

    def as_json(self) -> str:
        rate = self.events_acknowledged / self.seconds if self.seconds else 0.0
        fields = dataclasses.asdict(self) | {
            "seconds": round(self.seconds, 3),
            "events_per_second": round(rate, 1),
        }
        return json.dumps(fields)


@dataclasses.dataclass(frozen=True)
class Pacer:
    """When each event is due: ``speedup`` times faster than it happened."""

    speedup: float | None

    def due_after(self, first_event_s: float, event_s: float) -> float:
        """Seconds after the replay's start at which an event is due."""
        if self.speedup is None:
            return 0.0
        return max(0.0, (event_s - first_event_s) / self.speedup)


class Replayer:
    """Sends behaviour events through a producer and counts the acknowledged."""

    def __init__(
        self,
        producer: EventProducer,
        topic: str,
        *,
        pacer: Pacer = Pacer(None),
        content_type: ContentType = ContentType.PROTOBUF,
        stopping: threading.Event | None = None,
        keep_acknowledged_ids: bool = False,
    ) -> None:
        self.summary = ReplaySummary()
        self.acknowledged_ids: list[str] = []
        self._producer = producer
        self._topic = topic
        self._pacer = pacer
        self._content_type = content_type
        self._stopping = stopping or threading.Event()
        self._keep_ids = keep_acknowledged_ids
        self._clock = ShopClock()

    def replay(self, lines: Iterable[tuple[int, list[str]]]) -> ReplaySummary:
        """Send one event per line, then wait for every acknowledgement."""
        started = time.monotonic()
        first_event_s: float | None = None
        for line_number, row in lines:
            if self._stopping.is_set():
                break
            try:
                event = event_from_row(row, line_number, self._clock)
            except ValueError as exc:
                self._skip(line_number, exc)
                continue
            event_s = float(event.event_time.seconds)
            if first_event_s is None:
                first_event_s = event_s
            self._wait_until(started + self._pacer.due_after(first_event_s, event_s))
            self.send(event)

        remaining = self._producer.flush(FLUSH_TIMEOUT_SECONDS)
        if remaining:
            logger.error("%d events never acknowledged or failed", remaining)
        self.summary.seconds = time.monotonic() - started
        return self.summary

    def send(self, event: BehaviourEvent) -> None:
        """Hand one event to the producer, waiting while its queue is full."""
        value, encoded_headers = encode(event, self._content_type)
        headers: RecordHeaders = list(encoded_headers)
        key = shopper_key(event).encode()
        while True:
            try:
                self._producer.produce(
                    self._topic,
                    value=value,
                    key=key,
                    headers=headers,
                    on_delivery=self._delivered,
                )
                break
            except BufferError:
                self._producer.poll(0.05)
        self.summary.events_sent += 1
        if self.summary.events_sent % POLL_EVERY_EVENTS == 0:
            self._producer.poll(0)

    def _wait_until(self, due: float) -> None:
        while not self._stopping.is_set():
            remaining = due - time.monotonic()
            if remaining <= 0:
                return
            self._producer.poll(min(remaining, 0.1))

    def _delivered(self, error: KafkaError | None, message: Message) -> None:
        if error is not None:
            self.summary.events_failed += 1
            if self.summary.events_failed <= 10:
                logger.warning("event not delivered: %s", error.str())
            return
        self.summary.events_acknowledged += 1
        if self._keep_ids:
            event = decode(BehaviourEvent, message.value(), header_pairs(message))
            self.acknowledged_ids.append(event.event_id)

    def _skip(self, line_number: int, exc: ValueError) -> None:
        self.summary.lines_skipped += 1
        logger.warning(
            "line %d skipped: %s", line_number, exc, extra={"line": line_number}
        )


def replay_producer(kafka: KafkaSettings) -> Producer:
    """An idempotent acks=all producer tuned for a bulk replay."""
    return Producer(kafka.producer_config(logger=logger, **THROUGHPUT_OVERRIDES))


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    configure_logging("ingest-replay")
    kafka = KafkaSettings.from_env(client_id="recops-replay")
    stopping = threading.Event()

    def on_signal(signum: int, _: FrameType | None) -> None:
        logger.info("stopping on %s", signal.Signals(signum).name)
        stopping.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    replayer = Replayer(
        replay_producer(kafka),
        kafka.topic(Topic.BEHAVIOUR_EVENTS),
        pacer=Pacer(None if args.as_fast_as_possible else args.speedup),
        content_type=ContentType.JSON
        if args.content_type == "json"
        else ContentType.PROTOBUF,
        stopping=stopping,
    )
    summary = replayer.replay(read_lines(args.data, args.limit))
    print(summary.as_json(), flush=True)
    complete = summary.events_failed == 0
    return 0 if complete and summary.events_acknowledged == summary.events_sent else 1


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m ingest.replay")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    pace = parser.add_mutually_exclusive_group()
    pace.add_argument(
        "--speedup", type=_positive, help="replay N times faster than it happened"
    )
    pace.add_argument(
        "--as-fast-as-possible",
        action="store_true",
        help="send without pacing (the default)",
    )
    parser.add_argument("--limit", type=int, help="send only the first N lines")
    parser.add_argument(
        "--content-type", choices=["protobuf", "json"], default="protobuf"
    )
    args = parser.parse_args(argv)
    if args.speedup is None:
        args.as_fast_as_possible = True
    return args


def _positive(text: str) -> float:
    number = float(text)
    if not number > 0:
        raise argparse.ArgumentTypeError(f"{text} is not a positive number")
    return number


if __name__ == "__main__":
    sys.exit(main())
