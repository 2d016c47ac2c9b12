from inference_fakes import FakeRecord, count, ingested
from prometheus_client import CollectorRegistry

from eventbus.contracts import BehaviourType
from inference.history import PurchaseHistory, PurchaseHistoryFeed
from inference.metrics import InferenceMetrics


def test_only_product_purchases_enter_the_history(
    metrics: InferenceMetrics, registry: CollectorRegistry
) -> None:
    history = PurchaseHistory(max_items_per_user=10)
    feed = PurchaseHistoryFeed(history, metrics)
    without_item_kind = ingested("17850", "22752")
    without_item_kind.header_pairs = without_item_kind.header_pairs[:-1]

    feed.handle(
        [
            ingested("17850", "85123A"),
            ingested("17850", "71053", kind=BehaviourType.BEHAVIOUR_TYPE_VIEW),
            ingested("17850", "84406B", kind=BehaviourType.BEHAVIOUR_TYPE_RETURN),
            ingested("17850", "POST", item_kind="non_product"),
            without_item_kind,
        ]
    )

    assert history.recent("17850") == ("85123A",)
    assert [item for item, _ in history.best_sellers()] == ["85123A"]
    assert (
        count(registry, "recops_inference_history_events_total", outcome="recorded")
        == 1
    )
    assert (
        count(registry, "recops_inference_history_events_total", outcome="ignored") == 4
    )
    assert count(registry, "recops_inference_history_users") == 1


def test_a_shopper_keeps_only_the_last_purchases_oldest_first() -> None:
    history = PurchaseHistory(max_items_per_user=3)

    for item_id in ["85123A", "71053", "84406B", "84029G", "84029E"]:
        history.record("17850", item_id)

    assert history.recent("17850") == ("84406B", "84029G", "84029E")


def test_guest_purchases_count_for_popularity_but_build_no_history() -> None:
    history = PurchaseHistory(max_items_per_user=3)

    history.record("", "22752")

    assert history.user_count == 0
    assert history.best_sellers() == (("22752", 1),)


def test_best_sellers_rank_by_purchase_count_then_stock_code() -> None:
    history = PurchaseHistory(max_items_per_user=3)
    for user_id, item_id in [
        ("12583", "22752"),
        ("13047", "71053"),
        ("17850", "85123A"),
        ("12583", "71053"),
    ]:
        history.record(user_id, item_id)

    assert history.best_sellers() == (("71053", 2), ("22752", 1), ("85123A", 1))


def test_the_last_description_seen_for_a_product_is_kept() -> None:
    history = PurchaseHistory(max_items_per_user=3)

    history.record("17850", "85123A", "WHITE HANGING HEART T-LIGHT HOLDER")
    history.record("12583", "85123A", "CREAM HANGING HEART T-LIGHT HOLDER")
    history.record("13047", "85123A", "")

    assert history.description("85123A") == "CREAM HANGING HEART T-LIGHT HOLDER"


def test_an_undecodable_event_is_counted_and_the_rest_still_apply(
    metrics: InferenceMetrics, registry: CollectorRegistry
) -> None:
    history = PurchaseHistory(max_items_per_user=3)
    feed = PurchaseHistoryFeed(history, metrics)
    garbage = FakeRecord(b"\x08\xff", [("item-kind", b"product")])

    feed.handle([garbage, ingested("17850", "85123A")])

    assert history.recent("17850") == ("85123A",)
    assert (
        count(registry, "recops_inference_history_events_total", outcome="undecodable")
        == 1
    )
