"""Each shopper's recent purchases and how often each product sells.

:class:`PurchaseHistory` is the in-memory view; :class:`PurchaseHistoryFeed`
fills it from ingested behaviour events, keeping only product purchases.
"""

from __future__ import annotations

import collections
import logging
import threading
from collections.abc import Sequence

from eventbus import DecodeError, decode
from eventbus.contracts import BehaviourEvent, BehaviourType
from inference.feeds import Record, header_list, header_value
from inference.metrics import InferenceMetrics

logger = logging.getLogger(__name__)

ITEM_KIND_HEADER = "item-kind"
PRODUCT = "product"


class PurchaseHistory:
    """Recent purchases per shopper and purchase counts per product.

    Written by one feed thread, read by request threads; every access holds
    one lock for a few dictionary operations.
    """

    def __init__(self, max_items_per_user: int) -> None:
        self._max_items_per_user = max_items_per_user
        self._recent: dict[str, collections.deque[str]] = {}
        self._purchase_counts: collections.Counter[str] = collections.Counter()
        self._descriptions: dict[str, str] = {}
        self._best_sellers: tuple[tuple[str, int], ...] | None = ()
        self._lock = threading.Lock()

    def record(self, user_id: str, item_id: str, description: str = "") -> None:
        """Remember that ``user_id`` (empty for a guest) bought ``item_id``."""
        if not item_id:
            return
        with self._lock:
            if user_id:
                recent = self._recent.get(user_id)
                if recent is None:
                    recent = self._recent[user_id] = collections.deque(
                        maxlen=self._max_items_per_user
                    )
                recent.append(item_id)
            self._purchase_counts[item_id] += 1
            if description:
                self._descriptions[item_id] = description
            self._best_sellers = None

    def recent(self, user_id: str) -> tuple[str, ...]:
        """The shopper's last purchases, oldest first."""
        with self._lock:
            return tuple(self._recent.get(user_id, ()))

    def best_sellers(self) -> tuple[tuple[str, int], ...]:
        """Every product bought so far with its count, most bought first."""
        with self._lock:
            if self._best_sellers is None:
                counts = self._purchase_counts
                self._best_sellers = tuple(
                    sorted(counts.items(), key=lambda pair: (-pair[1], pair[0]))
                )
            return self._best_sellers

    def description(self, item_id: str) -> str:
        """The last description seen for a product, or ``""``."""
        with self._lock:
            return self._descriptions.get(item_id, "")

    @property
    def user_count(self) -> int:
        """Shoppers with at least one remembered purchase."""
        with self._lock:
            return len(self._recent)


class PurchaseHistoryFeed:
    """Applies ingested behaviour events to a :class:`PurchaseHistory`."""

    def __init__(self, history: PurchaseHistory, metrics: InferenceMetrics) -> None:
        self._history = history
        self._metrics = metrics

    def handle(self, records: Sequence[Record]) -> None:
        outcomes: collections.Counter[str] = collections.Counter()
        for record in records:
            outcomes[self._apply(record)] += 1
        for outcome, count in outcomes.items():
            self._metrics.history_events.labels(outcome).inc(count)
        self._metrics.history_users.set(self._history.user_count)

    def _apply(self, record: Record) -> str:
        headers = record.headers()
        if header_value(headers, ITEM_KIND_HEADER) != PRODUCT:
            return "ignored"
        try:
            event = decode(BehaviourEvent, record.value(), header_list(headers))
        except DecodeError as exc:
            logger.warning(
                "undecodable ingested event: %s",
                exc,
                extra={"partition": record.partition(), "offset": record.offset()},
            )
            return "undecodable"
        if event.type != BehaviourType.BEHAVIOUR_TYPE_PURCHASE or not event.item_id:
            return "ignored"
        self._history.record(event.user_id, event.item_id, event.item_description)
        return "recorded"
