from pathlib import Path

import pytest
from search_corpora import write_esci
from trainer_snapshots import event, write_snapshot

from trainer.errors import CorpusError
from trainer.search.corpus import (
    Judgments,
    ProductCorpus,
    catalogue_corpus,
    esci_product_text,
    load_esci_judgments,
    load_esci_products,
    purchased_products_corpus,
)
from trainer.sequences import ItemCatalogue
from trainer.snapshot import SnapshotPurchases, load_purchases


def shop_purchases(directory: Path) -> SnapshotPurchases:
    """A snapshot whose descriptions change, go blank, or never exist."""
    train = [
        event("c1", "85123A", 1, item_description="WHITE HEART"),
        event("c1", "71053", 2, item_description="LANTERN"),
        event("c2", "POST", 3, item_description=""),
    ]
    test = [
        event("c2", "85123A", 9, item_description="WHITE HANGING  HEART"),
        event("c2", "71053", 10, item_description=" "),
    ]
    return load_purchases(write_snapshot(directory, {"train": train, "test": test}))


def test_an_esci_text_starts_with_title_brand_and_colour() -> None:
    product = {
        "title": "Kindle  Paperwhite",
        "brand": "Amazon",
        "color": "Black",
        "bullet_points": "Waterproof\nThin",
        "description": "",
        "category": ["Electronics"],
        "price": None,
    }

    assert (
        esci_product_text(product) == "Kindle Paperwhite Amazon Black Waterproof Thin"
    )


def test_a_long_esci_text_is_cut_to_about_two_thousand_characters() -> None:
    text = esci_product_text({"title": "lamp", "description": "bright " * 1000})

    assert text.startswith("lamp bright")
    assert len(text) <= 2000


def test_esci_products_and_judgments_are_read_with_their_gains(
    tmp_path: Path,
) -> None:
    esci = write_esci(
        tmp_path,
        [{"asin": "A1", "title": "red lamp"}, {"asin": "A2", "title": "blue mug"}],
        [("lamp", "A1", "E"), ("lamp", "A2", "I"), ("mug", "A2", "S")],
    )

    corpus = load_esci_products(esci)
    judgments = load_esci_judgments(esci)

    assert corpus == ProductCorpus(["A1", "A2"], ["red lamp", "blue mug"])
    assert judgments.queries == ["lamp", "mug"]
    assert judgments.gains("lamp") == {"A1": 1.0, "A2": 0.0}
    assert len(judgments) == 3


def test_a_quoted_query_with_a_comma_stays_one_query(tmp_path: Path) -> None:
    esci = write_esci(tmp_path, [{"asin": "A1", "title": "t"}], [])
    (esci / "judgments.csv").write_text(
        'query,product_id,esci_label\n"mug, blue",A1,S\n'
    )

    assert load_esci_judgments(esci).gains("mug, blue") == {"A1": 0.1}


def test_an_unknown_label_is_refused(tmp_path: Path) -> None:
    esci = write_esci(tmp_path, [{"asin": "A1"}], [("lamp", "A1", "X")])

    with pytest.raises(CorpusError, match="unknown ESCI label 'X'"):
        load_esci_judgments(esci)


def test_judgments_without_any_query_are_refused(tmp_path: Path) -> None:
    esci = write_esci(tmp_path, [{"asin": "A1"}], [])

    with pytest.raises(CorpusError, match="no judged query"):
        load_esci_judgments(esci)


def test_missing_esci_files_are_named(tmp_path: Path) -> None:
    with pytest.raises(CorpusError, match=r"products\.jsonl\.gz"):
        load_esci_products(tmp_path)
    with pytest.raises(CorpusError, match=r"judgments\.csv"):
        load_esci_judgments(tmp_path)


def test_a_judgments_subset_keeps_only_the_queries_asked_for() -> None:
    judgments = Judgments({"a": {"p": "E"}, "b": {"p": "I"}})

    assert judgments.subset(["b"]).queries == ["b"]


def test_a_product_listed_twice_is_refused() -> None:
    with pytest.raises(ValueError, match="twice"):
        ProductCorpus(["A1", "A1"], ["a", "b"])


def test_the_shop_corpus_keeps_each_stock_codes_latest_description(
    tmp_path: Path,
) -> None:
    snapshot = shop_purchases(tmp_path / "snap")

    corpus = purchased_products_corpus([snapshot.train, snapshot.test])

    assert corpus == ProductCorpus(
        ["71053", "85123A"], ["LANTERN", "WHITE HANGING HEART"]
    )


def test_a_catalogue_without_descriptions_cannot_be_searched(
    tmp_path: Path,
) -> None:
    snapshot = shop_purchases(tmp_path / "snap")

    with pytest.raises(CorpusError, match="description"):
        purchased_products_corpus([snapshot.validation])


def test_the_recommender_catalogue_indexes_its_described_products() -> None:
    catalogue = ItemCatalogue(
        item_ids=["", "85123A", "71053"],
        item_descriptions=["", "WHITE HEART", ""],
        purchase_counts=[0, 2, 1],
        index={"85123A": 1, "71053": 2},
    )

    assert catalogue_corpus(catalogue) == ProductCorpus(["85123A"], ["WHITE HEART"])
