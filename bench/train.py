"""A full training run on the real data: wall time, peak memory and quality.

Trains the recommender on a snapshot of the shop's transactions (by default
the newest one ``make demo`` cut) exactly as operators run it,
``python -m trainer train --no-publish``, in a child process with a state
directory of its own, so that the run starts with an empty registry and its
peak memory is its own. With ``--runs 2`` (the default) the same seeded run
is repeated, and the largest difference between the two runs' test metrics
is reported: how reproducible a run is on this machine.

The JSON written to ``reports/bench/train.json`` holds, per run, wall time,
training time, epochs and peak resident memory; and the test-quality table
of the first run: the model beside the four baselines, repeats allowed and
new items only, at K = 10 and 20. ``goal`` compares the model's NDCG@10 with
the best baseline's, repeats allowed, the measure the quality gate uses::

    python bench/train.py [--snapshot DIR|latest] [--runs N] [--out PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEMO_SNAPSHOTS = REPO / ".state" / "demo" / "snapshots"
BASELINES = ("popularity", "recent_popularity", "repeat", "co_occurrence")
CANDIDATES = {"repeats": "", "new_items": "new_items."}
METRICS = ("ndcg", "hit_rate", "precision", "recall", "f1", "coverage")
CUTOFFS = (10, 20)
GOAL_METRIC = "ndcg@10"
GOAL_MARGIN = 0.10


def newest_snapshot(root: Path) -> Path:
    """The newest complete snapshot under ``root``; exits with advice if none."""
    found = sorted(p.parent for p in root.glob("*/manifest.json"))
    if not found:
        sys.exit(
            f"bench/train: no snapshot under {root}; `make demo` cuts one from "
            "the shop's transactions, or pass --snapshot DIR"
        )
    return found[-1]


def train_once(snapshot: Path, state_dir: Path, log_path: Path) -> dict[str, object]:
    """One training run in a child process; its summary line, timed."""
    env = dict(
        os.environ,
        RECOPS_STATE_DIR=str(state_dir),
        RECOPS_TRAINER_METRICS_PORT="-1",
    )
    command = [
        sys.executable,
        "-m",
        "trainer",
        "train",
        "--snapshot",
        str(snapshot),
        "--no-publish",
        "--no-progress",
    ]
    started = time.monotonic()
    with log_path.open("w") as log:
        done = subprocess.run(
            command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=log, text=True
        )
    wall = time.monotonic() - started
    if done.returncode != 0:
        sys.exit(f"bench/train: training exited with {done.returncode}; see {log_path}")
    print(done.stdout, end="", flush=True)
    summary: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    summary["wall_seconds"] = round(wall, 2)
    return summary


def quality_table(metrics: dict[str, float]) -> dict[str, object]:
    """Metrics regrouped as candidates -> K -> recommender -> metric."""
    names = {"model": "", **{b: f"baseline.{b}." for b in BASELINES}}
    return {
        candidates: {
            f"K={k}": {
                recommender: {m: metrics[f"{prefix}{kind}{m}@{k}"] for m in METRICS}
                for recommender, prefix in names.items()
            }
            for k in CUTOFFS
        }
        for candidates, kind in CANDIDATES.items()
    }


def goal(metrics: dict[str, float]) -> dict[str, object]:
    """The model's gate metric against the best baseline's."""
    baselines = {b: metrics[f"baseline.{b}.{GOAL_METRIC}"] for b in BASELINES}
    best = max(baselines, key=lambda b: baselines[b])
    model = metrics[GOAL_METRIC]
    return {
        "metric": f"{GOAL_METRIC}, repeats allowed",
        "model": model,
        "best_baseline": best,
        "best_baseline_value": baselines[best],
        "lift": model / baselines[best] - 1.0 if baselines[best] else None,
        "wanted_lift": GOAL_MARGIN,
        "met": model >= baselines[best] * (1.0 + GOAL_MARGIN),
    }


def largest_difference(runs: list[dict[str, object]]) -> float | None:
    """The largest absolute difference of any test metric between runs."""
    if len(runs) < 2:
        return None
    tables = [run["metrics"] for run in runs]
    first = tables[0]
    assert isinstance(first, dict)
    return max(
        abs(float(table[name]) - float(first[name]))  # type: ignore[index]
        for table in tables[1:]
        for name in first
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--snapshot", default="latest")
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--out", type=Path, default=REPO / "reports/bench/train.json")
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    snapshot = (
        newest_snapshot(DEMO_SNAPSHOTS)
        if args.snapshot == "latest"
        else Path(args.snapshot).resolve()
    )

    runs = []
    args.out.parent.mkdir(parents=True, exist_ok=True)
    for number in range(1, args.runs + 1):
        with tempfile.TemporaryDirectory(prefix="recops-bench-train-") as state:
            log_path = args.out.with_suffix(f".run{number}.log")
            runs.append(train_once(snapshot, Path(state), log_path))
    children_peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024

    first = runs[0]
    metrics = first["metrics"]
    assert isinstance(metrics, dict)
    report = {
        "benchmark": "train",
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
        },
        "snapshot": str(snapshot),
        "snapshot_id": first["snapshot_id"],
        "config": first["config"],
        "runs": [
            {
                "wall_seconds": run["wall_seconds"],
                "training_seconds": run["training_seconds"],
                "epochs": run["epochs"],
                "best_epoch": run["best_epoch"],
                "stop_reason": run["stop_reason"],
                "peak_memory_bytes": run["peak_memory_bytes"],
                "ndcg@10": run["metrics"][GOAL_METRIC],  # type: ignore[index]
            }
            for run in runs
        ],
        "largest_children_peak_memory_bytes": children_peak,
        "reproducibility_max_abs_difference": largest_difference(runs),
        "test_customers": metrics["test_customers"],
        "quality": quality_table(metrics),
        "goal": goal(metrics),
    }
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report["goal"]))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
