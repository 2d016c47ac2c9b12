from collections.abc import Callable

from eventbus.contracts import BehaviourEvent, BehaviourType
from ingest.classification import ItemKind, Oddity, classify, item_kind_of

EventFactory = Callable[..., BehaviourEvent]


def test_a_signed_in_purchase_of_goods_has_no_oddity(make_event: EventFactory) -> None:
    classification = classify(make_event())

    assert classification.item_kind is ItemKind.PRODUCT
    assert classification.oddities == frozenset()


def test_a_guest_checkout_is_kept_and_marked_guest(make_event: EventFactory) -> None:
    classification = classify(make_event(user_id="", session_id="536414"))

    assert classification.oddities == {Oddity.GUEST}


def test_a_free_line_is_marked_zero_price(make_event: EventFactory) -> None:
    classification = classify(make_event(price=0.0))

    assert classification.oddities == {Oddity.ZERO_PRICE}


def test_a_view_without_a_price_is_not_marked_zero_price(
    make_event: EventFactory,
) -> None:
    view = make_event(type=BehaviourType.BEHAVIOUR_TYPE_VIEW, quantity=0, price=0.0)

    assert classify(view).oddities == frozenset()


def test_a_cancelled_line_is_marked_return(make_event: EventFactory) -> None:
    event = make_event(type=BehaviourType.BEHAVIOUR_TYPE_RETURN, quantity=-1)

    assert classify(event).oddities == {Oddity.RETURN}


def test_postage_is_a_non_product(make_event: EventFactory) -> None:
    classification = classify(make_event(item_id="POST", item_description="POSTAGE"))

    assert classification.item_kind is ItemKind.NON_PRODUCT
    assert classification.oddities == {Oddity.NON_PRODUCT}


def test_every_charge_fee_and_adjustment_code_of_the_shop_is_a_non_product() -> None:
    codes = ["POST", "DOT", "M", "m", "C2", "D", "S", "B", "CRUK"]
    codes += ["BANK CHARGES", "AMAZONFEE", "gift_0001_20", "gift_0001_50"]

    assert {item_kind_of(code) for code in codes} == {ItemKind.NON_PRODUCT}


def test_stock_codes_of_goods_are_products() -> None:
    codes = ["85123A", "22139", "15056BL", "DCGSSGIRL", "DCGS0003", "PADS"]

    assert {item_kind_of(code) for code in codes} == {ItemKind.PRODUCT}


def test_a_guest_return_of_a_free_postage_line_carries_every_oddity(
    make_event: EventFactory,
) -> None:
    event = make_event(
        type=BehaviourType.BEHAVIOUR_TYPE_RETURN,
        user_id="",
        item_id="POST",
        quantity=-1,
        price=0.0,
    )

    assert classify(event).oddities == set(Oddity)
