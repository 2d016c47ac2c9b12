"""Fit the sequential recommender, choosing the epoch by validation NDCG.

Each epoch shuffles the training windows and, at every labelled position,
minimises the cross-entropy over the whole catalogue of each of the next
``target_horizon`` purchases; with basket weights only basket ends are
labelled, each weighted by its age. Then it ranks the validation customers.
Training stops when validation NDCG has not improved for ``patience_epochs``
epochs, after ``max_epochs``, or before an epoch that would not finish within
``max_training_seconds``; the best epoch's weights are kept, and may then be
refitted on longer histories (:func:`train_recommender`).

With a ``log_dir``, the loss of every batch and each epoch's loss and
validation NDCG are written there as TensorBoard event files; with
``progress``, each epoch shows a progress bar on stderr.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import random
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.tensorboard import SummaryWriter
from tqdm import tqdm

from trainer.errors import TrainingError
from trainer.evaluation import (
    GATE_CANDIDATES,
    EvaluationCase,
    ScoringRecommender,
    evaluate,
)
from trainer.model import SequentialRecommender, history_features
from trainer.sequences import (
    IGNORE_LABEL,
    ItemCatalogue,
    future_purchases,
    label_weights,
    training_windows,
)
from trainer.settings import TrainingConfig

logger = logging.getLogger(__name__)

Clock = Callable[[], float]


@dataclasses.dataclass(frozen=True)
class EpochRecord:
    """What one epoch achieved."""

    epoch: int
    train_loss: float
    validation_ndcg: float | None
    seconds: float

    @property
    def selection_score(self) -> float:
        """Higher is better: validation NDCG, or minus the loss without one."""
        if self.validation_ndcg is None:
            return -self.train_loss
        return self.validation_ndcg


@dataclasses.dataclass(frozen=True)
class TrainedModel:
    """The best model found, and how training went.

    ``epochs`` and ``best_epoch`` describe the run that chose the epoch;
    ``refit_epochs`` counts the epochs of the refit that produced ``model``,
    0 when there was none.
    """

    model: SequentialRecommender
    epochs: list[EpochRecord]
    best_epoch: int
    training_seconds: float
    stop_reason: str
    refit_epochs: int = 0


EpochListener = Callable[[EpochRecord], None]


def seed_everything(seed: int) -> None:
    """Seed every random generator training touches."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def train_recommender(
    catalogue: ItemCatalogue,
    histories: Sequence[list[int]],
    validation: Sequence[EvaluationCase],
    config: TrainingConfig,
    *,
    weights: Sequence[list[float]] | None = None,
    refit_histories: Sequence[list[int]] | None = None,
    refit_weights: Sequence[list[float]] | None = None,
    on_epoch: EpochListener | None = None,
    clock: Clock = time.monotonic,
    log_dir: Path | None = None,
    progress: bool = False,
) -> TrainedModel:
    """Train on ``histories`` and keep the epoch best on ``validation``.

    With ``refit_histories`` (the training histories continued through the
    validation window) and validation customers, a fresh model is then
    trained on them for the chosen number of epochs, with the same seed, and
    returned in place of the chosen one: it has seen the months just before
    the test window, which matter in a shop whose range follows the seasons.
    ``weights`` and ``refit_weights`` (:func:`~trainer.sequences.basket_weights`)
    restrict learning to basket ends and weigh each; without them every
    purchase is a label of weight 1.
    """
    started = clock()
    if not validation:
        logger.warning("no validation customers; choosing the epoch by its loss")
    chosen = _fit(
        catalogue,
        histories,
        weights,
        validation,
        config,
        on_epoch=on_epoch,
        clock=clock,
        log_dir=log_dir,
        progress=progress,
    )
    if refit_histories is None or not validation:
        return chosen
    logger.info("refitting for %d epochs on training and validation", chosen.best_epoch)
    refit = _fit(
        catalogue,
        refit_histories,
        refit_weights,
        (),
        dataclasses.replace(config, max_epochs=chosen.best_epoch),
        on_epoch=on_epoch,
        clock=clock,
        log_dir=None if log_dir is None else log_dir / "refit",
        progress=progress,
    )
    return dataclasses.replace(
        chosen,
        model=refit.model,
        training_seconds=clock() - started,
        refit_epochs=len(refit.epochs),
    )


def _fit(
    catalogue: ItemCatalogue,
    histories: Sequence[list[int]],
    weights: Sequence[list[float]] | None,
    validation: Sequence[EvaluationCase],
    config: TrainingConfig,
    *,
    on_epoch: EpochListener | None,
    clock: Clock,
    log_dir: Path | None,
    progress: bool,
) -> TrainedModel:
    seed_everything(config.seed)
    started = clock()
    inputs, _ = training_windows(histories, config.max_len, config.history_len)
    labels = future_purchases(histories, config.max_len, config.target_horizon, weights)
    if weights is None:
        label_weight = labels[..., 0].ne(IGNORE_LABEL).float()
    else:
        label_weight = label_weights(weights, config.max_len)
    learnable = labels[..., 0].ne(IGNORE_LABEL).any(dim=1)
    inputs, labels = inputs[learnable], labels[learnable]
    label_weight = label_weight[learnable]
    if not len(inputs):
        raise TrainingError("no basket is followed by another to learn from")
    model = SequentialRecommender(len(catalogue), config)
    optimiser = torch.optim.AdamW(
        model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay
    )
    shuffler = torch.Generator().manual_seed(config.seed)
    logger.info(
        "training on %d windows of %d items",
        len(inputs),
        config.max_len,
        extra={"items": len(catalogue), "windows": len(inputs)},
    )

    epochs: list[EpochRecord] = []
    best_state = copy.deepcopy(model.state_dict())
    stop_reason = "max_epochs"
    curves = _Curves(log_dir)
    for epoch in range(1, config.max_epochs + 1):
        epoch_started = clock()
        if epochs and _would_overrun(epochs[-1].seconds, started, clock, config):
            stop_reason = "time_budget"
            break

        batches = _batches(len(inputs), config.batch_size, shuffler)
        if progress:
            batches = tqdm(batches, desc=f"epoch {epoch}", unit="batch", leave=False)
        loss = _fit_one_epoch(
            model, optimiser, (inputs, labels, label_weight), batches, curves
        )
        ndcg = _validation_ndcg(model, validation, catalogue, config)
        record = EpochRecord(epoch, loss, ndcg, clock() - epoch_started)
        epochs.append(record)
        curves.epoch(record)
        logger.info("epoch %d done", epoch, extra=dataclasses.asdict(record))
        if on_epoch is not None:
            on_epoch(record)

        if _best_epoch(epochs) == epoch:
            best_state = copy.deepcopy(model.state_dict())
        elif epoch - _best_epoch(epochs) >= config.patience_epochs:
            stop_reason = "no_improvement"
            break

    curves.close()
    model.load_state_dict(best_state)
    model.eval()
    return TrainedModel(
        model=model,
        epochs=epochs,
        best_epoch=_best_epoch(epochs),
        training_seconds=clock() - started,
        stop_reason=stop_reason,
    )


def _would_overrun(
    last_epoch_seconds: float, started: float, clock: Clock, config: TrainingConfig
) -> bool:
    elapsed = clock() - started
    return elapsed + last_epoch_seconds > config.max_training_seconds


def _best_epoch(epochs: Sequence[EpochRecord]) -> int:
    best = max(epochs, key=lambda record: (record.selection_score, -record.epoch))
    return best.epoch


class _Curves:
    """Training curves as TensorBoard event files, or nothing without a dir."""

    def __init__(self, log_dir: Path | None) -> None:
        self._writer = None if log_dir is None else SummaryWriter(str(log_dir))
        self._step = 0

    def batch(self, loss: float) -> None:
        self._step += 1
        if self._writer is not None:
            self._writer.add_scalar("loss/batch", loss, self._step)

    def epoch(self, record: EpochRecord) -> None:
        if self._writer is None:
            return
        self._writer.add_scalar("loss/epoch", record.train_loss, record.epoch)
        if record.validation_ndcg is not None:
            self._writer.add_scalar(
                "validation/ndcg", record.validation_ndcg, record.epoch
            )
        self._writer.add_scalar("seconds/epoch", record.seconds, record.epoch)
        self._writer.flush()

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()


def _batches(
    count: int, batch_size: int, shuffler: torch.Generator
) -> list[torch.Tensor]:
    order = torch.randperm(count, generator=shuffler)
    return list(torch.split(order, batch_size))


def _fit_one_epoch(
    model: SequentialRecommender,
    optimiser: torch.optim.Optimizer,
    windows: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    batches: Iterable[torch.Tensor],
    curves: _Curves,
) -> float:
    model.train()
    inputs, labels, label_weight = windows
    total_loss, total_labels = 0.0, 0
    for batch in batches:
        batch_inputs = inputs[batch]
        batch_labels = labels[batch]
        labelled = batch_labels[..., 0].ne(IGNORE_LABEL)

        hidden = model.hidden_states(batch_inputs)[labelled]
        positions = batch_labels.size(1)
        features = history_features(batch_inputs, positions)[labelled]
        rows = labelled.nonzero()[:, 0]
        logits = model.product_logits(hidden, batch_inputs[rows], features)
        loss = future_cross_entropy(
            logits, batch_labels[labelled], label_weight[batch][labelled]
        )
        optimiser.zero_grad(set_to_none=True)
        loss.backward()  # type: ignore[no-untyped-call]
        optimiser.step()

        count = int(labelled.sum())
        total_loss += loss.item() * count
        total_labels += count
        curves.batch(loss.item())
    if not np.isfinite(total_loss):
        raise TrainingError("training loss is not finite")
    return total_loss / max(total_labels, 1)


def future_cross_entropy(
    logits: torch.Tensor, futures: torch.Tensor, weights: torch.Tensor | None = None
) -> torch.Tensor:
    """Cross-entropy of each position's next purchases, averaged over positions.

    ``logits`` ``[N, V - 1]`` are the products'; ``futures`` ``[N, h]`` the
    catalogue indices bought next, :data:`IGNORE_LABEL` where there are none;
    each known one counts equally within its position. ``weights`` ``[N]``
    weigh the positions (equally without). With ``h = 1`` and no weights
    this is the usual next-purchase cross-entropy.
    """
    log_probabilities = nn.functional.log_softmax(logits, dim=1)
    known = futures.ne(IGNORE_LABEL)
    picked = log_probabilities.gather(1, (futures - 1).clamp(min=0))
    per_position = (picked * known).sum(dim=1) / known.sum(dim=1).clamp(min=1)
    if weights is None:
        return -per_position.mean()
    return -(per_position * weights).sum() / weights.sum().clamp(min=1e-12)


def _validation_ndcg(
    model: SequentialRecommender,
    validation: Sequence[EvaluationCase],
    catalogue: ItemCatalogue,
    config: TrainingConfig,
) -> float | None:
    if not validation:
        return None
    model.eval()
    recommender = ScoringRecommender(model, config.history_len)
    evaluation = evaluate(
        recommender,
        validation,
        catalogue,
        (config.cutoff,),
        GATE_CANDIDATES,
        batch_size=config.eval_batch_size,
    )
    return evaluation.at[config.cutoff].ndcg
