import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry, Counter

from eventbus.http import ServiceEndpoint


@pytest.fixture
def endpoint() -> Iterator[tuple[ServiceEndpoint, dict[str, str | None]]]:
    registry = CollectorRegistry()
    Counter("recops_test_things_total", "Things.", registry=registry).inc(3)
    problems: dict[str, str | None] = {"live": None, "ready": "no partitions yet"}
    served = ServiceEndpoint(
        0,
        registry,
        live=lambda: problems["live"],
        ready=lambda: problems["ready"],
        host="127.0.0.1",
    ).start()
    yield served, problems
    served.stop()


def get(endpoint: ServiceEndpoint, path: str) -> tuple[int, str]:
    url = f"http://127.0.0.1:{endpoint.port}{path}"
    try:
        with urllib.request.urlopen(url, timeout=5) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as refused:
        return refused.code, refused.read().decode()


def test_readiness_answers_503_with_the_reason_until_the_check_passes(
    endpoint: tuple[ServiceEndpoint, dict[str, str | None]],
) -> None:
    served, problems = endpoint

    assert get(served, "/readyz") == (503, "no partitions yet\n")
    problems["ready"] = None
    assert get(served, "/readyz") == (200, "ok\n")


def test_liveness_and_metrics_are_served_beside_readiness(
    endpoint: tuple[ServiceEndpoint, dict[str, str | None]],
) -> None:
    served, problems = endpoint
    problems["live"] = "the loop is stuck"

    assert get(served, "/livez") == (503, "the loop is stuck\n")
    status, text = get(served, "/metrics")
    assert status == 200
    assert "recops_test_things_total 3.0" in text


def test_a_status_report_is_served_as_json_whatever_readiness_says() -> None:
    served = ServiceEndpoint(
        0,
        CollectorRegistry(),
        live=lambda: None,
        ready=lambda: "no model",
        status=lambda: '{"answering": "popularity"}',
        host="127.0.0.1",
    ).start()
    try:
        assert get(served, "/status") == (200, '{"answering": "popularity"}\n')
        assert get(served, "/readyz") == (503, "no model\n")
    finally:
        served.stop()
