import threading
from collections.abc import Sequence

from inference_fakes import FakeRecord

from inference.feeds import Record, TopicTail, header_value


class ListSource:
    """Hands out prepared batches, then nothing; remembers being closed."""

    def __init__(self, batches: list[list[FakeRecord]]) -> None:
        self.batches = batches
        self.closed = threading.Event()

    def consume(self, max_records: int, timeout_seconds: float) -> list[Record]:
        if self.batches:
            return list(self.batches.pop(0))
        self.closed.wait(timeout_seconds)
        return []

    def close(self) -> None:
        self.closed.set()


class CollectingHandler:
    """Keeps every offset it was handed; fails on the batches it is told to."""

    def __init__(self, batches_expected: int, failing_batch: int = -1) -> None:
        self.offsets: list[int] = []
        self.batches = 0
        self.failing_batch = failing_batch
        self.batches_expected = batches_expected
        self.done = threading.Event()

    def handle(self, records: Sequence[Record]) -> None:
        self.batches += 1
        if self.batches == self.batches_expected:
            self.done.set()
        if self.batches - 1 == self.failing_batch:
            raise ValueError("a handler bug")
        self.offsets.extend(record.offset() or 0 for record in records)


def batch(*offsets: int) -> list[FakeRecord]:
    return [FakeRecord(b"x", [], offset) for offset in offsets]


def test_a_tail_hands_batches_over_in_topic_order_and_closes_its_source() -> None:
    source = ListSource([batch(0, 1), batch(2), batch(3, 4)])
    handler = CollectingHandler(batches_expected=3)
    tail = TopicTail(
        name="test",
        source_factory=lambda: source,
        handler=handler,
        poll_timeout_seconds=0.05,
    )

    tail.start()
    assert handler.done.wait(5)
    tail.stop()

    assert handler.offsets == [0, 1, 2, 3, 4]
    assert source.closed.is_set()


def test_a_handler_failure_skips_that_batch_and_the_tail_reads_on() -> None:
    source = ListSource([batch(0), batch(1), batch(2)])
    handler = CollectingHandler(batches_expected=3, failing_batch=1)
    tail = TopicTail(
        name="test",
        source_factory=lambda: source,
        handler=handler,
        poll_timeout_seconds=0.05,
    )

    tail.start()
    assert handler.done.wait(5)
    tail.stop()

    assert handler.offsets == [0, 2]


def test_header_values_are_found_in_pairs_or_mappings_whatever_the_key_case() -> None:
    assert header_value([("Item-Kind", b"product")], "item-kind") == "product"
    assert header_value({"item-kind": "non_product"}, "item-kind") == "non_product"
    assert header_value([("content-type", b"x")], "item-kind") is None
    assert header_value(None, "item-kind") is None
