"""Prepare RLPR data as verl parquet: the training set and/or the seven benchmarks (see ``rlpr.data.prep``).

Examples::

    python scripts/prepare_rlpr_data.py --dataset train --output data/rlpr/rlpr_train.parquet
    python scripts/prepare_rlpr_data.py --dataset MMLU-Pro --output data/rlpr/eval   # the paper's 1,000-question subset
    python scripts/prepare_rlpr_data.py --dataset MMLU-Pro --full --output data/rlpr/eval_full
    python scripts/prepare_rlpr_data.py --dataset benchmarks --webinstruct free --format R1_nothink --output o
    python scripts/prepare_rlpr_data.py --dataset MATH-500 --source ./math500.jsonl --output data/rlpr/eval
    python scripts/prepare_rlpr_data.py --dataset WebInstruct-verified --source ./webinstruct_mc.jsonl --output o
    python scripts/prepare_rlpr_data.py --dataset WebInstruct-verified --webinstruct free --output data/rlpr/eval

``--output`` is a ``.parquet`` file, or a directory (a path without a suffix, or an existing directory) where files
get the paper's names (``MATH-500_Avg2.parquet``). It is checked for writing before any data is read.
"""

from __future__ import annotations

import argparse
import json
import logging
from dataclasses import asdict
from pathlib import Path

from rlpr.answer import FORMAT_MODES
from rlpr.data.prep import (
    DATASETS,
    WEBINSTRUCT,
    WEBINSTRUCT_FREE,
    WEBINSTRUCT_VARIANTS,
    check_output,
    default_file_name,
    prepare_file,
)
from rlpr.evaluation.benchmarks import BENCHMARKS

ALL_BENCHMARKS = "benchmarks"


def columns_help() -> str:
    """The input columns each dataset needs (``a | b``: the first of them the file has)."""
    lines = [f"  {name:<21} {spec.describe_columns()}" for name, spec in DATASETS.items()]
    lines.append(f"  {WEBINSTRUCT + ' (free)':<21} {WEBINSTRUCT_FREE.describe_columns()}")
    return "input columns each --dataset needs (a | b: either name):\n" + "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, epilog=columns_help(), formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dataset", required=True, choices=[*DATASETS, ALL_BENCHMARKS])
    parser.add_argument("--output", required=True, help="output .parquet file, or a directory")
    parser.add_argument("--source", help="hub dataset name or local .parquet/.jsonl/.json (default: the hub name)")
    parser.add_argument("--config", help="hub dataset config (default: the dataset's usual one)")
    parser.add_argument("--split", help="hub split (default: the dataset's evaluation split)")
    parser.add_argument("--format", default="R1", choices=FORMAT_MODES, help="R1 (Qwen) or R1_nothink (Llama/Gemma)")
    parser.add_argument(
        "--repeat",
        type=int,
        help="rows per question (default 1: validation samples k per row by the file's _Avg<k> name)",
    )
    parser.add_argument("--max-questions", type=int, help="keep a seeded random subset of this many questions")
    parser.add_argument("--seed", type=int, default=0, help="seed of the subsets and of GPQA's option shuffle")
    parser.add_argument(
        "--full", action="store_true", help="MMLU-Pro: every question, not the paper's seeded 1,000-question subset"
    )
    parser.add_argument(
        "--webinstruct",
        default="choice",
        choices=WEBINSTRUCT_VARIANTS,
        help="WebInstruct-verified: multiple choice A-D as in the paper (needs an options column), or free-form",
    )
    args = parser.parse_args(argv)
    output = Path(args.output)
    if args.dataset == ALL_BENCHMARKS and (args.source or output.suffix == ".parquet"):
        parser.error(f"--dataset {ALL_BENCHMARKS} reads every benchmark from the hub into an --output directory")
    if args.dataset == ALL_BENCHMARKS and args.webinstruct == "choice":
        parser.error(
            f"--dataset {ALL_BENCHMARKS} reads {WEBINSTRUCT} from the hub, whose split has no options column: add "
            f"--webinstruct free, then build the multiple-choice file with --dataset {WEBINSTRUCT} --source FILE"
        )
    if output.suffix not in ("", ".parquet") and not output.is_dir():
        parser.error(f"--output {args.output}: expected a .parquet file or a directory (a name without a suffix)")
    return args


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = parse_args(argv)
    names = list(BENCHMARKS) if args.dataset == ALL_BENCHMARKS else [args.dataset]
    output = Path(args.output)
    targets = {name: output if output.suffix == ".parquet" else output / default_file_name(name) for name in names}
    for target in targets.values():
        check_output(target)  # before any download or conversion
    for name, target in targets.items():
        report = prepare_file(
            name,
            target,
            source=args.source,
            config=args.config,
            split=args.split,
            fmt=args.format,
            repeat=args.repeat,
            max_questions=args.max_questions,
            seed=args.seed,
            variant=args.webinstruct if name == WEBINSTRUCT else None,
            full=args.full,
        )
        print(f"{target}: {json.dumps(asdict(report))}")


if __name__ == "__main__":
    main()
