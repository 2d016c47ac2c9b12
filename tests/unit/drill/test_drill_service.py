import argparse
import threading
from collections.abc import Callable

from drill import cli
from drill.service import DrillService
from eventbus import KafkaSettings, decode, encode
from eventbus.contracts import DrillCommand, DrillResult, DrillVerdict


class Record:
    def __init__(self, value: bytes, offset: int) -> None:
        self._value = value
        self._offset = offset

    def error(self) -> None:
        return None

    def value(self) -> bytes:
        return self._value

    def headers(self) -> list[tuple[str, bytes]]:
        return [("content-type", b"application/x-protobuf")]

    def partition(self) -> int:
        return 0

    def offset(self) -> int:
        return self._offset


class Commands:
    """Hands out the given records, then asks the service to stop."""

    def __init__(
        self, records: list[Record], journal: list[str], stop: threading.Event
    ):
        self.records = records
        self.journal = journal
        self.stop = stop
        self.subscribed: list[str] = []

    def subscribe(self, topics: list[str]) -> None:
        self.subscribed = topics

    def poll(self, timeout: float) -> Record | None:
        if not self.records:
            self.stop.set()
            return None
        return self.records.pop(0)

    def commit(self, message: Record, asynchronous: bool) -> None:
        self.journal.append(f"commit {message.offset()}")


class Results:
    def __init__(self) -> None:
        self.published: list[tuple[str, bytes]] = []

    def produce(
        self,
        topic: str,
        value: bytes,
        key: bytes,
        headers: object,
        on_delivery: Callable[[object, object], None],
    ) -> None:
        self.published.append((topic, value))
        on_delivery(None, None)

    def flush(self, timeout: float) -> int:
        return 0


class Runner:
    def __init__(self, journal: list[str]) -> None:
        self.journal = journal

    def run(self, command: DrillCommand) -> DrillResult:
        self.journal.append(f"run {command.drill_id}")
        return DrillResult(
            drill_id=command.drill_id, verdict=DrillVerdict.DRILL_VERDICT_PASSED
        )


def test_each_command_is_committed_before_its_drill_and_answered_after() -> None:
    journal: list[str] = []
    stop = threading.Event()
    value, _ = encode(DrillCommand(drill_id="d-1", experiment="kafka-node-kill"))
    commands = Commands(
        [Record(b"\x00not protobuf\xff", 0), Record(value, 1)], journal, stop
    )
    results = Results()
    service = DrillService(
        consumer=commands,
        producer=results,
        kafka=KafkaSettings(topic_prefix="t."),
        runner=Runner(journal),
        timeout_seconds=1,
    )

    service.run(stop)

    assert commands.subscribed == ["t.drill-commands"]
    assert journal == ["commit 0", "commit 1", "run d-1"]
    ((topic, published),) = results.published
    assert topic == "t.drill-results"
    assert decode(DrillResult, published, None).drill_id == "d-1"


def test_the_operator_command_carries_the_options_as_parameters() -> None:
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    args = parser.parse_args(
        ["kafka-node-kill", "--target", "kafka-node-1", "--fault-seconds", "12"]
    )

    command = cli.command_from(args)

    assert (command.experiment, command.target) == ("kafka-node-kill", "kafka-node-1")
    assert dict(command.parameters) == {"fault_seconds": "12"}
    assert command.drill_id
    assert command.HasField("requested_at")
