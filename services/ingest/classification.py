"""What kind of behaviour event this is, in the shop's words.

Real orders carry lines that are not goods (postage, fees, manual
adjustments, gift vouchers), shoppers who did not sign in, free items and
returns. Ingest keeps all of them and says which is which, so downstream
models can choose what to learn from.
"""

from __future__ import annotations

import dataclasses
import enum

from eventbus.contracts import BehaviourEvent, BehaviourType

# Stock codes of the retail data that are charges, fees or adjustments.
NON_PRODUCT_STOCK_CODES = frozenset(
    {
        "POST",  # postage
        "DOT",  # dotcom postage
        "C2",  # carriage
        "M",  # manual entry
        "D",  # discount
        "S",  # samples
        "B",  # bad debt adjustment
        "CRUK",  # charity commission
        "BANK CHARGES",
        "AMAZONFEE",
    }
)
GIFT_VOUCHER_PREFIX = "GIFT_"
_RETURN = BehaviourType.BEHAVIOUR_TYPE_RETURN

_PRICED_TYPES = frozenset(
    {
        BehaviourType.BEHAVIOUR_TYPE_ADD_TO_CART,
        BehaviourType.BEHAVIOUR_TYPE_PURCHASE,
        BehaviourType.BEHAVIOUR_TYPE_RETURN,
    }
)


class ItemKind(enum.StrEnum):
    """Whether an event's item is goods the shop sells."""

    PRODUCT = "product"
    NON_PRODUCT = "non_product"


class Oddity(enum.StrEnum):
    """A trait of real shop data that downstream models may want to skip."""

    GUEST = "guest"
    ZERO_PRICE = "zero_price"
    NON_PRODUCT = "non_product"
    RETURN = "return"


@dataclasses.dataclass(frozen=True, slots=True)
class Classification:
    """The item kind of an accepted event and the oddities it carries."""

    item_kind: ItemKind
    oddities: frozenset[Oddity]


def item_kind_of(stock_code: str) -> ItemKind:
    """Goods or not, judged by the stock code; a search has no item: goods."""
    code = stock_code.strip().upper()
    if code in NON_PRODUCT_STOCK_CODES or code.startswith(GIFT_VOUCHER_PREFIX):
        return ItemKind.NON_PRODUCT
    return ItemKind.PRODUCT


def classify(event: BehaviourEvent) -> Classification:
    """Name the item kind and every oddity of a valid event."""
    item_kind = item_kind_of(event.item_id)
    oddities: set[Oddity] = set()
    if not event.user_id:
        oddities.add(Oddity.GUEST)
    if item_kind is ItemKind.NON_PRODUCT:
        oddities.add(Oddity.NON_PRODUCT)
    if event.type in _PRICED_TYPES and event.price == 0:
        oddities.add(Oddity.ZERO_PRICE)
    if event.type == _RETURN:
        oddities.add(Oddity.RETURN)
    return Classification(item_kind=item_kind, oddities=frozenset(oddities))
