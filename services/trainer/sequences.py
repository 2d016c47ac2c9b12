"""Turn purchase logs into the item sequences the model learns from.

Items are numbered by the :class:`ItemCatalogue` built from the training
split: index 0 is padding, index 1 the most purchased product, and so on.
Products first bought after the training window have no index; the model
cannot recommend them, and evaluation still counts them as missed.
"""

from __future__ import annotations

import collections
import dataclasses
from collections.abc import Iterable, Iterator, Sequence

import torch

from trainer.errors import SnapshotError
from trainer.snapshot import PurchaseLog

_SECONDS_PER_DAY = 86_400.0

PADDING_INDEX = 0
IGNORE_LABEL = -100


@dataclasses.dataclass(frozen=True)
class ItemCatalogue:
    """The products a model can recommend, most purchased first."""

    item_ids: list[str]
    item_descriptions: list[str]
    purchase_counts: list[int]
    index: dict[str, int]

    @classmethod
    def from_purchases(cls, log: PurchaseLog) -> ItemCatalogue:
        """Every product purchased in ``log``, numbered by purchase count."""
        if not log:
            raise SnapshotError("the training split holds no customer purchases")
        counts = collections.Counter(log.item_ids)
        descriptions: dict[str, str] = {}
        for item_id, description in zip(
            log.item_ids, log.item_descriptions, strict=True
        ):
            if description:
                descriptions[item_id] = description

        ranked = sorted(counts, key=lambda item: (-counts[item], item))
        return cls(
            item_ids=["", *ranked],
            item_descriptions=["", *(descriptions.get(i, "") for i in ranked)],
            purchase_counts=[0, *(counts[i] for i in ranked)],
            index={item_id: n for n, item_id in enumerate(ranked, start=1)},
        )

    def __len__(self) -> int:
        """Catalogue size V, padding included."""
        return len(self.item_ids)

    def popular_items(self, limit: int) -> list[int]:
        """Indices of the ``limit`` most purchased products, most first."""
        return list(range(1, min(limit + 1, len(self))))

    def encode(self, item_ids: Iterable[str]) -> list[int]:
        """Indices of the known products among ``item_ids``, in order."""
        return [n for n in map(self.index.get, item_ids) if n is not None]


def customer_histories(
    logs: Iterable[PurchaseLog], catalogue: ItemCatalogue
) -> dict[str, list[int]]:
    """Each customer's known products in purchase order, across ``logs``."""
    histories: dict[str, list[int]] = collections.defaultdict(list)
    for log in logs:
        for user_id, item_id in zip(log.user_ids, log.item_ids, strict=True):
            index = catalogue.index.get(item_id)
            if index is not None:
                histories[user_id].append(index)
    return dict(histories)


def basket_weights(
    logs: Sequence[PurchaseLog],
    catalogue: ItemCatalogue,
    half_life_days: float = 0.0,
) -> dict[str, list[float]]:
    """Beside each purchase of :func:`customer_histories`, its weight as a label.

    A basket is one customer's purchases at one event time (an invoice).
    Only a basket's first purchase is a label, learnt from the history
    before it: 0.0 elsewhere. Its weight is 1.0, or with ``half_life_days``
    halves for every that many days it lies before the last purchase in
    ``logs``, so that recent baskets count more.
    """
    times = [at for log in logs for at in log.event_times]
    end = max(times, default=0.0)
    weights: dict[str, list[float]] = collections.defaultdict(list)
    last_time: dict[str, float] = {}
    for log in logs:
        rows = zip(log.user_ids, log.item_ids, log.event_times, strict=True)
        for user_id, item_id, at in rows:
            if item_id not in catalogue.index:
                continue
            weight = 0.0
            if last_time.get(user_id) != at:
                age_days = (end - at) / _SECONDS_PER_DAY
                weight = 0.5 ** (age_days / half_life_days) if half_life_days else 1.0
            weights[user_id].append(weight)
            last_time[user_id] = at
    return dict(weights)


def left_pad(items: list[int], length: int, value: int = PADDING_INDEX) -> list[int]:
    """The last ``length`` items, padded on the left with ``value``."""
    tail = items[-length:]
    return [value] * (length - len(tail)) + tail


def training_windows(
    histories: Iterable[list[int]], max_len: int, history_len: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs ``[N, history_len]`` and next-item labels ``[N, max_len]``.

    A history is cut from its end into windows of ``max_len`` labels, so
    every purchase after a customer's first is a label exactly once. The
    inputs of a window are the ``history_len`` purchases before each label
    window ends, left-padded; the labels line up with the last ``max_len``
    inputs, each the purchase after its input. Padding positions carry
    :data:`IGNORE_LABEL`. ``history_len`` defaults to ``max_len``.
    """
    history_len = max_len if history_len is None else history_len
    if history_len < max_len:
        raise ValueError("history_len must be at least max_len")
    inputs: list[list[int]] = []
    labels: list[list[int]] = []
    for history in histories:
        for window in label_windows(len(history), max_len):
            end = window.stop
            inputs.append(
                left_pad(history[max(0, end - 1 - history_len) : end - 1], history_len)
            )
            labels.append(left_pad(history[window.start : end], max_len, IGNORE_LABEL))
    if not inputs:
        raise SnapshotError("no customer has two purchases in the training split")
    return torch.tensor(inputs), torch.tensor(labels)


def future_purchases(
    histories: Sequence[list[int]],
    max_len: int,
    horizon: int,
    weights: Sequence[list[float]] | None = None,
) -> torch.Tensor:
    """The next ``horizon`` purchases at every label of :func:`training_windows`.

    ``[N, max_len, horizon]``, windows in the same order; column 0 is the
    label itself, and a history's end or padding is :data:`IGNORE_LABEL`.
    With ``weights`` (:func:`basket_weights`, one list per history), only
    labels of positive weight are kept: the model then learns at basket
    ends, where Recommend is asked, what the next baskets hold.
    """
    if horizon < 1:
        raise ValueError("horizon must be at least 1")
    if weights is not None and len(weights) != len(histories):
        raise ValueError("weights must have one list per history")
    unlabelled = [IGNORE_LABEL] * horizon
    futures: list[list[list[int]]] = []
    for n, history in enumerate(histories):
        for window in label_windows(len(history), max_len):
            rows = [
                _right_pad(history[j : j + horizon], horizon)
                if weights is None or weights[n][j] > 0
                else unlabelled
                for j in window
            ]
            futures.append([unlabelled] * (max_len - len(rows)) + rows)
    return torch.tensor(futures, dtype=torch.long).reshape(-1, max_len, horizon)


def label_weights(weights: Sequence[list[float]], max_len: int) -> torch.Tensor:
    """Each label's weight ``[N, max_len]``, windows as in :func:`training_windows`.

    ``weights`` is :func:`basket_weights`' lists, in the histories' order;
    padding weighs 0.
    """
    rows: list[list[float]] = []
    for history in weights:
        for window in label_windows(len(history), max_len):
            row = history[window.start : window.stop]
            rows.append([0.0] * (max_len - len(row)) + row)
    return torch.tensor(rows, dtype=torch.float32).reshape(-1, max_len)


def label_windows(length: int, max_len: int) -> Iterator[range]:
    """The label positions of each training window of a history, last first.

    A history is cut from its end into windows of at most ``max_len``
    labels; position 0, a customer's first purchase, is never a label, so
    every later purchase is a label exactly once.
    """
    end = length
    while end >= 2:
        yield range(max(1, end - max_len), end)
        end -= max_len


def _right_pad(items: list[int], length: int) -> list[int]:
    return items + [IGNORE_LABEL] * (length - len(items))
