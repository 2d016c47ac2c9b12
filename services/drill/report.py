"""Drill reports: the result as JSON for tools and as markdown for people.

Both land in the reports directory as ``<drill_id>.json`` and ``<drill_id>.md``.
"""

from __future__ import annotations

import json
from datetime import UTC
from pathlib import Path

from eventbus.contracts import DrillResult, DrillVerdict

REPORT_FORMAT = 1


def verdict_name(verdict: DrillVerdict) -> str:
    """``PASSED`` for ``DRILL_VERDICT_PASSED`` and so on."""
    name: str = DrillVerdict.Name(verdict)
    return name.removeprefix("DRILL_VERDICT_")


def result_document(result: DrillResult) -> dict[str, object]:
    """The result as plain JSON values, one key per result field."""
    started, finished = _instants(result)
    return {
        "format": REPORT_FORMAT,
        "drill_id": result.drill_id,
        "experiment": result.experiment,
        "target": result.target,
        "verdict": verdict_name(result.verdict),
        "summary": result.summary,
        "started_at": started,
        "finished_at": finished,
        "events_acknowledged": result.events_acknowledged,
        "events_ingested": result.events_ingested,
        "events_lost": result.events_lost,
        "events_duplicated": result.events_duplicated,
        "requests_total": result.requests_total,
        "requests_failed": result.requests_failed,
        "seconds_to_detect": result.seconds_to_detect,
        "seconds_to_recover": result.seconds_to_recover,
        "measurements": dict(sorted(result.measurements.items())),
        "report_uri": result.report_uri,
    }


def render_markdown(result: DrillResult) -> str:
    """A page an operator reads after the drill."""
    started, finished = _instants(result)
    recover = (
        f"{result.seconds_to_recover:.2f} s"
        if result.seconds_to_recover >= 0
        else "not recovered"
    )
    lines = [
        f"# Drill {result.drill_id}: {result.experiment} on {result.target}",
        "",
        f"**{verdict_name(result.verdict)}**: {result.summary}",
        "",
        f"- started: {started or '-'}",
        f"- finished: {finished or '-'}",
        f"- flows healthy after the revert: {recover}",
        "",
        "## Probe purchases",
        "",
        "| acknowledged | ingested | lost | duplicated |",
        "|---:|---:|---:|---:|",
        f"| {result.events_acknowledged} | {result.events_ingested} "
        f"| {result.events_lost} | {result.events_duplicated} |",
        "",
        "## Recommend requests",
        "",
        "| total | failed |",
        "|---:|---:|",
        f"| {result.requests_total} | {result.requests_failed} |",
        "",
        "## Measurements",
        "",
        "| name | value |",
        "|---|---:|",
    ]
    for name, value in sorted(result.measurements.items()):
        lines.append(f"| {name} | {value:.4g} |")
    return "\n".join(lines) + "\n"


def write_report(result: DrillResult, reports_dir: Path) -> Path:
    """Write both reports, setting ``report_uri`` to the JSON one; return its path."""
    reports_dir.mkdir(parents=True, exist_ok=True)
    json_path = (reports_dir / f"{result.drill_id}.json").resolve()
    result.report_uri = json_path.as_uri()
    _write(json_path, json.dumps(result_document(result), indent=2) + "\n")
    _write(json_path.with_suffix(".md"), render_markdown(result))
    return json_path


def _write(path: Path, text: str) -> None:
    partial = path.with_name(path.name + ".partial")
    partial.write_text(text)
    partial.replace(path)


def _instants(result: DrillResult) -> tuple[str | None, str | None]:
    """When the drill started and finished, ISO 8601 in UTC, if known."""
    started = finished = None
    if result.HasField("started_at"):
        started = result.started_at.ToDatetime(tzinfo=UTC).isoformat()
    if result.HasField("finished_at"):
        finished = result.finished_at.ToDatetime(tzinfo=UTC).isoformat()
    return started, finished
