"""The quality gate: whether a candidate model may replace the serving one.

A candidate is refused when any score it gave on a validation batch is not
finite, or when its gate metric, measured on the same test cases as the
serving model's, falls below the serving value by more than the tolerance::

    refuse when candidate < serving * (1 - tolerance)

The tolerance is relative (0.02 allows 2% less), so it means the same for
a metric near 0.1 as near 0.9. With no serving model there is nothing to
lose, and a candidate with finite scores is accepted. The functions here
decide only; the training run logs, alerts and moves the serving pointer.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence

import torch


@dataclasses.dataclass(frozen=True, kw_only=True)
class GateDecision:
    """The gate's verdict on a candidate, with every reason to refuse it.

    ``threshold`` is the lowest acceptable candidate value; None without a
    serving value to compare with.
    """

    accepted: bool
    reasons: tuple[str, ...]
    metric: str
    candidate_value: float | None
    serving_value: float | None
    serving_version: str | None
    threshold: float | None


def check_finite(scores: torch.Tensor) -> str | None:
    """Why a batch of scores is unfit, or None when every score is finite."""
    finite = torch.isfinite(scores)
    if bool(finite.all()):
        return None
    bad = int((~finite).sum())
    nan = int(torch.isnan(scores).sum())
    return (
        f"{bad} of {scores.numel()} validation scores are not finite "
        f"({nan} NaN, {bad - nan} infinite)"
    )


def decide(
    *,
    candidate_metrics: Mapping[str, float],
    serving_metrics: Mapping[str, float] | None,
    metric: str,
    tolerance: float,
    serving_version: str | None = None,
    score_problems: Sequence[str] = (),
) -> GateDecision:
    """Accept or refuse a candidate; ``serving_metrics`` None when none serves.

    Both mappings must come from the same test cases. ``score_problems``
    are :func:`check_finite`'s findings over the validation batches.
    """
    reasons = list(score_problems)
    candidate = candidate_metrics.get(metric)
    serving = None if serving_metrics is None else serving_metrics.get(metric)
    threshold = None

    if candidate is None or not math.isfinite(candidate):
        reasons.append(f"the candidate's {metric} is {candidate}")
    if serving_metrics is not None:
        if serving is None or not math.isfinite(serving):
            reasons.append(f"the serving model's {metric} is {serving}")
        else:
            threshold = serving * (1.0 - tolerance)
    if candidate is not None and threshold is not None and candidate < threshold:
        reasons.append(
            f"{metric} {candidate:.4f} is below {threshold:.4f}: serving "
            f"{serving_version or 'model'} has {serving:.4f}, "
            f"tolerance {tolerance:.1%}"
        )

    return GateDecision(
        accepted=not reasons,
        reasons=tuple(reasons),
        metric=metric,
        candidate_value=candidate,
        serving_value=serving,
        serving_version=serving_version,
        threshold=threshold,
    )
