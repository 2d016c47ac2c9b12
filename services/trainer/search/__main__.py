"""``python -m trainer.search evaluate | index``: measure and build search.

- ``evaluate``: the ESCI benchmark of :mod:`trainer.search.esci`; prints the
  quality table, then one JSON line with the summary as the last line of
  stdout; ``--output`` writes the same JSON to a file.
- ``index --snapshot <dir|latest>``: index the shop's products, every stock
  code purchased in the snapshot with its description; ``index --esci``:
  index the ESCI products with the dense weight fitted there. Either stores
  a ``product-search`` version, keeps it in the registry the trainer's
  settings name (``file://`` or ``s3://``) and prints it as JSON.

Logs go to stderr as JSON. Exit status: 0 done, 1 failed (missing or
unusable data, an index that could not be written), 2 bad arguments.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

import torch

from eventbus.logs import configure_logging
from trainer.errors import TrainerError
from trainer.registry import keep_version, store_for
from trainer.search.corpus import purchased_products_corpus
from trainer.search.encoder import TextEncoder
from trainer.search.esci import EsciReport, run_esci_benchmark
from trainer.search.index import index_corpus
from trainer.search.relevance import quality_table
from trainer.search.settings import (
    DEFAULT_DENSE_WEIGHT,
    DEFAULT_FEEDBACK,
    SearchConfig,
    SearchSettings,
)
from trainer.snapshot import load_purchases, resolve_snapshot

logger = logging.getLogger("trainer.search")

EXIT_FAILED = 1
EXIT_USAGE = 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m trainer.search")
    commands = parser.add_subparsers(dest="command", required=True)
    evaluate = commands.add_parser("evaluate", help="ESCI benchmark of the rankers")
    evaluate.add_argument("--output", type=Path, help="also write the JSON here")
    index = commands.add_parser("index", help="store a product-search version")
    source = index.add_mutually_exclusive_group(required=True)
    source.add_argument("--snapshot", help="snapshot directory, or 'latest'")
    source.add_argument("--esci", action="store_true", help="index ESCI products")
    for command in (evaluate, index):
        command.add_argument("--cutoff", type=int, help="k of nDCG@k (10)")
        command.add_argument("--seed", type=int, help="query split seed (42)")
        command.add_argument("--repeats", type=int, help="extra splits (20)")
        command.add_argument("--test-share", type=float, help="test queries (0.5)")
        command.add_argument("--max-tokens", type=int, help="encoder tokens (128)")
        command.add_argument("--dense-weight", type=float, help="fix the weight")
        command.add_argument(
            "--no-cache", action="store_true", help="embed again, keep nothing"
        )
    return parser


def settings_from(args: argparse.Namespace) -> SearchSettings:
    """The settings from the environment, the command line's config applied."""
    names = [f.name for f in dataclasses.fields(SearchConfig)]
    overrides = {n: v for n in names if (v := getattr(args, n, None)) is not None}
    settings = SearchSettings.from_env()
    return dataclasses.replace(settings, config=SearchConfig(**overrides))


def print_evaluation(report: EsciReport) -> None:
    feedback = (
        "no feedback"
        if report.feedback is None
        else f"feedback from the first {report.feedback.products} products "
        f"at weight {report.feedback.weight:g}"
    )
    print(
        f"ESCI: {len(report.corpus)} products, {len(report.train_queries)} train "
        f"and {len(report.test_queries)} test queries; encoder {report.encoder}; "
        f"hybrid dense weight {report.dense_weight:.2f}, {feedback} (fitted on train)"
    )
    rows = {f"{name} (test)": q for name, q in report.test.items()}
    rows.update({f"{name} (all)": q for name, q in report.all_queries.items()})
    print(quality_table(rows))
    goals = report.goals()
    print(
        f"retrieval: hybrid {report.retrieval_gain:+.1%} over BM25 on test "
        f"(goal +10%: {'met' if goals['retrieval_10pct_above_bm25'] else 'missed'}); "
        f"hybrid re-ranking nDCG {report.rerank_ndcg:.4f} "
        f"(goal 0.85: {'met' if goals['rerank_ndcg_0.85'] else 'missed'})"
    )
    repeated = report.repeated
    if repeated["splits"]:
        print(
            f"over {repeated['splits']:.0f} seeded splits: hybrid "
            f"{repeated['retrieval_gain_mean']:+.1%} "
            f"(sd {repeated['retrieval_gain_sd']:.1%}) over BM25; re-ranking nDCG "
            f"mean {repeated['rerank_ndcg_mean']:.4f}, "
            f"min {repeated['rerank_ndcg_min']:.4f}"
        )
    seconds = ", ".join(f"{k} {v:.1f} s" for k, v in report.seconds.items())
    print(f"wall time: {seconds}")


def evaluate(settings: SearchSettings, args: argparse.Namespace) -> int:
    report = run_esci_benchmark(settings, _encoder(settings))
    print_evaluation(report)
    summary = json.dumps(report.as_json())
    if args.output is not None:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(summary + "\n")
    print(summary, flush=True)
    return 0


def index(settings: SearchSettings, args: argparse.Namespace) -> int:
    config = settings.config
    encoder = _encoder(settings)
    if args.esci:
        report = run_esci_benchmark(settings, encoder)
        corpus, source = report.corpus, "esci"
        weight, metrics = report.dense_weight, report.metrics()
        feedback = report.feedback
    else:
        snapshot_dir = resolve_snapshot(args.snapshot, settings.trainer.snapshots_dir)
        purchases = load_purchases(snapshot_dir)
        logs = (purchases.train, purchases.validation, purchases.test)
        corpus = purchased_products_corpus(logs)
        source = purchases.snapshot_id
        fixed = config.dense_weight
        weight = DEFAULT_DENSE_WEIGHT if fixed is None else fixed
        feedback = DEFAULT_FEEDBACK
        metrics = {}
    written = index_corpus(
        settings.trainer.registry_dir,
        corpus,
        encoder,
        source=source,
        dense_weight=weight,
        feedback=feedback,
        metrics=metrics,
        config=config.as_dict(),
        cache_dir=settings.embeddings_cache_dir,
    )
    stored = keep_version(store_for(settings.trainer), written)
    summary = {
        "index": str(stored.directory),
        "uri": stored.uri,
        "version": stored.manifest.version,
        "products": len(corpus),
    }
    print(json.dumps(summary), flush=True)
    return 0


def _encoder(settings: SearchSettings) -> TextEncoder:
    config = settings.config
    return TextEncoder(max_tokens=config.max_tokens, batch_size=config.batch_size)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = settings_from(args)
    except ValueError as exc:
        print(f"python -m trainer.search: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if args.no_cache:
        settings = dataclasses.replace(settings, cache_dir=None)
    configure_logging("trainer", settings.trainer.log_level)
    torch.set_num_threads(settings.trainer.torch_threads)
    try:
        return (
            evaluate(settings, args)
            if args.command == "evaluate"
            else index(settings, args)
        )
    except TrainerError as exc:
        logger.error("search %s failed: %s", args.command, exc)
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
