import json
from pathlib import Path

import pytest
from search_corpora import WordHashEncoder, write_esci
from trainer_snapshots import event, write_snapshot

from trainer.search import __main__ as cli
from trainer.search.index import latest_search_index, load_search_index
from trainer.search.settings import DEFAULT_FEEDBACK

PRODUCTS = [
    {"asin": "A1", "title": "white metal lantern", "brand": "Shine"},
    {"asin": "A2", "title": "red heart cushion", "brand": "Cosy"},
    {"asin": "A3", "title": "regency cake stand", "brand": "Tea"},
    {"asin": "A4", "title": "party bunting flags", "brand": "Fete"},
    {"asin": "A5", "title": "metal watering can", "brand": "Garden"},
]
JUDGMENTS = [
    ("metal lantern", "A1", "E"),
    ("metal lantern", "A5", "I"),
    ("heart cushion", "A2", "E"),
    ("heart cushion", "A1", "I"),
    ("cake stand", "A3", "E"),
    ("bunting", "A4", "E"),
    ("bunting", "A2", "C"),
]


@pytest.fixture
def environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Data, cache and state under ``tmp_path``; the word-hash encoder."""
    write_esci(tmp_path / "data" / "esci", PRODUCTS, JUDGMENTS)
    monkeypatch.setenv("RECOPS_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("RECOPS_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("RECOPS_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setattr(cli, "_encoder", lambda settings: WordHashEncoder())
    return tmp_path


def test_evaluate_prints_a_table_then_a_json_summary_and_writes_it(
    environment: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    output = environment / "reports" / "search.json"

    status = cli.main(["evaluate", "--output", str(output), "--test-share", "0.5"])

    lines = capsys.readouterr().out.strip().splitlines()
    summary = json.loads(lines[-1])
    assert status == 0
    assert any(line.startswith("hybrid (test)") for line in lines)
    assert summary == json.loads(output.read_text())
    assert summary["products"] == len(PRODUCTS)
    assert summary["train_queries"] + summary["test_queries"] == 4
    assert set(summary["test"]) == {"bm25-plain", "bm25", "dense", "hybrid"}
    assert 0.0 <= summary["dense_weight"] <= 1.0
    assert summary["feedback"] is None or summary["feedback"]["products"] >= 1
    assert summary["repeated_splits"]["splits"] == 20
    assert set(summary["goals"]) == {"retrieval_10pct_above_bm25", "rerank_ndcg_0.85"}


def test_index_esci_stores_a_version_that_finds_its_products(
    environment: Path,
) -> None:
    assert cli.main(["index", "--esci", "--dense-weight", "0.5"]) == 0

    directory = latest_search_index(environment / "state" / "registry")
    index = load_search_index(directory, WordHashEncoder())
    assert index.search("regency cake stand", k=1)[0][0] == "A3"
    assert index.manifest is not None
    assert index.manifest.snapshot_id == "esci"
    assert "hybrid/ndcg@10" in index.manifest.metrics


def test_index_of_a_snapshot_searches_the_shops_stock_codes(
    environment: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = [
        event("c1", "85123A", 1, item_description="WHITE HANGING HEART T-LIGHT"),
        event("c1", "71053", 2, item_description="WHITE METAL LANTERN"),
        event("c2", "22423", 3, item_description="REGENCY CAKESTAND 3 TIER"),
    ]
    snapshots = environment / "state" / "snapshots"
    write_snapshot(snapshots / "snap-1", {"train": rows})

    status = cli.main(["index", "--snapshot", "latest"])

    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    index = load_search_index(Path(printed["index"]), WordHashEncoder())
    assert status == 0
    assert printed["products"] == 3
    assert printed["uri"] == (Path(printed["index"]) / "embeddings.npy").as_uri()
    assert index.search("metal lantern", k=2)[0][0] == "71053"
    assert index.manifest is not None
    assert index.manifest.snapshot_id == "snap-1"
    assert index.ranker.feedback == DEFAULT_FEEDBACK


def test_missing_esci_data_fails_with_status_one(
    environment: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RECOPS_DATA_DIR", str(environment / "nowhere"))

    assert cli.main(["evaluate"]) == 1


def test_a_snapshot_that_does_not_exist_fails_with_status_one(
    environment: Path,
) -> None:
    assert cli.main(["index", "--snapshot", str(environment / "nowhere")]) == 1


def test_judgments_without_queries_fail_with_status_one(environment: Path) -> None:
    write_esci(environment / "data" / "esci", PRODUCTS, [])

    assert cli.main(["evaluate"]) == 1


@pytest.mark.parametrize(
    "arguments",
    [
        ["evaluate", "--cutoff", "0"],
        ["evaluate", "--test-share", "1.5"],
        ["index", "--esci", "--dense-weight", "2"],
    ],
)
def test_bad_settings_fail_with_status_two(
    environment: Path, arguments: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(arguments) == 2
    assert "python -m trainer.search:" in capsys.readouterr().err


def test_index_needs_a_snapshot_or_esci(environment: Path) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["index"])

    assert exit_info.value.code == 2
