import json
from datetime import UTC, datetime
from pathlib import Path

from drill.report import render_markdown, result_document, write_report
from eventbus.contracts import DrillResult, DrillVerdict


def passed_result() -> DrillResult:
    result = DrillResult(
        drill_id="20261203T190000Z-1a2b3c4d",
        experiment="kafka-node-kill",
        target="kafka-node-1",
        verdict=DrillVerdict.DRILL_VERDICT_PASSED,
        events_acknowledged=327,
        events_ingested=327,
        events_lost=0,
        events_duplicated=2,
        requests_total=163,
        requests_failed=1,
        seconds_to_recover=0.25,
        measurements={
            "requests_latency_p99_seconds_during_fault": 0.0164,
            "events_latency_p50_seconds_during_fault": 4.2958,
        },
        summary="no acknowledged event lost; flows recovered",
    )
    result.started_at.FromDatetime(datetime(2026, 12, 3, 19, 0, tzinfo=UTC))
    result.finished_at.FromDatetime(datetime(2026, 12, 3, 19, 0, 30, tzinfo=UTC))
    return result


def test_the_markdown_report_shows_verdict_counts_and_measurements() -> None:
    page = render_markdown(passed_result())

    assert page.startswith("# Drill 20261203T190000Z-1a2b3c4d: kafka-node-kill")
    assert "**PASSED**: no acknowledged event lost" in page
    assert "| 327 | 327 | 0 | 2 |" in page
    assert "| 163 | 1 |" in page
    assert "flows healthy after the revert: 0.25 s" in page
    assert "| events_latency_p50_seconds_during_fault | 4.296 |" in page
    assert "started: 2026-12-03T19:00:00+00:00" in page


def test_a_drill_that_never_recovered_says_so_instead_of_a_negative_time() -> None:
    result = passed_result()
    result.seconds_to_recover = -1

    assert "flows healthy after the revert: not recovered" in render_markdown(result)


def test_the_json_report_holds_every_result_field_by_name() -> None:
    document = result_document(passed_result())

    assert document["verdict"] == "PASSED"
    assert document["events_lost"] == 0
    assert document["finished_at"] == "2026-12-03T19:00:30+00:00"
    assert set(document) >= {
        "events_acknowledged",
        "events_ingested",
        "events_duplicated",
        "requests_total",
        "requests_failed",
        "seconds_to_recover",
        "measurements",
    }


def test_both_reports_are_written_beside_each_other_and_the_result_points_to_them(
    tmp_path: Path,
) -> None:
    result = passed_result()

    written = write_report(result, tmp_path / "drills")

    assert written == tmp_path / "drills" / "20261203T190000Z-1a2b3c4d.json"
    assert json.loads(written.read_text())["report_uri"] == written.as_uri()
    assert result.report_uri == written.as_uri()
    assert written.with_suffix(".md").read_text() == render_markdown(result)
