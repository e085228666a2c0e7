"""Prepare prompts with reference replies for a policy's RL run rewarded by a judge (rm_r1.as_reward.reward).

Sources: a local jsonl/parquet (``--local FILE``, a question string or a chat-message list in ``--prompt-key`` and the
reference reply in ``--reference-key``) and/or the CHOSEN replies of the RM-R1 preference sources (``--sources
skywork,code,math``, read by rm_r1.training.data from their hub names or local files with the same columns). Rows are
shuffled with ``--seed``; ``--val-size`` of them are held out; prompts over ``--max-prompt-length`` tokens of the
policy's chat template are dropped, and so are unusable rows, each counted under its reason. Writes ``train.parquet``,
``val.parquet`` and ``report.json`` (counts, drops by reason) atomically, after checking the folder is writable.

    python scripts/prepare_judge_reward_data.py --tokenizer Qwen/Qwen2.5-7B-Instruct --sources skywork \\
        --output-dir data/judge_reward
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

from harness.files import write_atomically, write_text_atomically
from rm_r1.as_reward.reward import CONTEXT_KEY
from rm_r1.judge.prompts import context_messages
from rm_r1.training.data import SOURCES, Report, convert, held_out, load_table, token_counts

ABILITY = "chat"
DEFAULT_MAX_PROMPT_LENGTH = 2048


def local_rows(path: str, prompt_key: str, reference_key: str, drops: Counter) -> list[dict[str, Any]]:
    """(source, index, context messages, reference) items of a local file; unusable rows counted in ``drops``."""
    table = load_table(path)  # a local file: a list of dicts; a hub dataset: a datasets.Dataset
    columns = set(table.column_names) if hasattr(table, "column_names") else {k for row in table for k in row}
    missing = [k for k in (prompt_key, reference_key) if k not in columns]
    if missing:
        raise ValueError(f"{path}: missing column(s) {missing}; it has {sorted(columns)}")
    items = []
    for index, row in enumerate(table):
        reference = row.get(reference_key)
        if not isinstance(reference, str) or not reference.strip():
            drops[f"{path}: empty or non-string reference"] += 1
            continue
        try:
            context = context_messages(row.get(prompt_key))
        except ValueError:
            drops[f"{path}: prompt is neither a question nor a message list ending with a user turn"] += 1
            continue
        items.append({"source": Path(path).name, "index": index, "context": context, "reference": reference})
    return items


def preference_rows(sources: dict[str, str], report: Report) -> list[dict[str, Any]]:
    """The chosen reply of every usable pair of the RM-R1 preference sources (``rm_r1.training.data`` skips and counts
    the rest in ``report``)."""
    items = []
    for name, location in sources.items():
        for pair in convert(enumerate(load_table(location)), name, report):
            items.append(
                {"source": pair.source, "index": pair.index, "context": pair.context, "reference": pair.chosen}
            )
    return items


def verl_row(item: dict[str, Any], split: str, number: int) -> dict[str, Any]:
    return {
        "data_source": item["source"],
        "prompt": item["context"],
        "ability": ABILITY,
        "reward_model": {"style": "model", "ground_truth": item["reference"]},
        "extra_info": {"index": number, "split": split, "source_index": item["index"], CONTEXT_KEY: item["context"]},
    }


def split_rows(items: list[dict[str, Any]], seed: int, val_size: float) -> dict[str, list[dict[str, Any]]]:
    """Seeded shuffle, then the held-out split (``rm_r1.training.data.held_out``); row numbers per split in shuffled
    order."""
    order = list(range(len(items)))
    random.Random(seed).shuffle(order)
    shuffled = [items[i] for i in order]
    val = held_out(len(shuffled), val_size, seed)
    splits: dict[str, list[dict[str, Any]]] = {"train": [], "val": []}
    for i, item in enumerate(shuffled):
        split = "val" if i in val else "train"
        splits[split].append(verl_row(item, split, len(splits[split])))
    return splits


def check_writable(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    try:
        with tempfile.NamedTemporaryFile(dir=folder):
            pass
    except OSError as error:
        raise SystemExit(f"--output-dir {folder} is not writable: {error}") from None


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output-dir", required=True, help="where train.parquet, val.parquet, report.json go")
    parser.add_argument("--tokenizer", required=True, help="the POLICY tokenizer (measures prompts)")
    parser.add_argument(
        "--local",
        action="append",
        default=[],
        metavar="FILE",
        help="a jsonl/parquet of prompts with reference replies (repeatable)",
    )
    parser.add_argument(
        "--prompt-key",
        default="prompt",
        help="column of --local files with the question or the chat messages (default: %(default)s)",
    )
    parser.add_argument(
        "--reference-key",
        default="reference",
        help="column of --local files with the reference reply (default: %(default)s)",
    )
    parser.add_argument(
        "--sources",
        default="",
        help=f"comma-separated subset of {','.join(SOURCES)}: their chosen replies become references",
    )
    for name, spec in SOURCES.items():
        parser.add_argument(
            f"--{name}",
            default=spec.hub_name,
            help=f"hub name or local file with the columns of {spec.hub_name} (default: %(default)s)",
        )
    parser.add_argument("--seed", type=int, default=0, help="seed of the shuffle and of the held-out split")
    parser.add_argument("--val-size", type=float, default=0.01, help="held-out rows: a fraction (< 1) or a count")
    parser.add_argument(
        "--max-prompt-length",
        type=int,
        default=DEFAULT_MAX_PROMPT_LENGTH,
        help="drop prompts longer than this many policy tokens (default: %(default)s)",
    )
    args = parser.parse_args(argv)
    args.sources = [s.strip() for s in args.sources.split(",") if s.strip()]
    unknown = sorted(set(args.sources) - set(SOURCES))
    if unknown:
        parser.error(f"--sources: unknown {unknown}; choose from {list(SOURCES)}")
    if not args.sources and not args.local:
        parser.error("give --local FILE and/or --sources")
    return args


def main(argv: list[str] | None = None, tokenizer: Any = None) -> dict[str, Any]:
    """Run the preparation; returns the report (also written as report.json)."""
    import datasets

    args = parse_args(argv)
    out = Path(args.output_dir)
    check_writable(out)
    if tokenizer is None:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(args.tokenizer)
    drops: Counter = Counter()
    report = Report()
    items = [item for path in args.local for item in local_rows(path, args.prompt_key, args.reference_key, drops)]
    items += preference_rows({name: getattr(args, name) for name in args.sources}, report)
    for source, reasons in report.skipped.items():
        for reason, count in reasons.items():
            drops[f"{source}: {reason}"] += count
    counts = token_counts(tokenizer, [item["context"] for item in items], add_generation_prompt=True)
    kept = []
    for item, count in zip(items, counts, strict=True):
        if count > args.max_prompt_length:
            drops[f"{item['source']}: prompt over {args.max_prompt_length} tokens"] += 1
        else:
            kept.append(item)
    splits = split_rows(kept, args.seed, args.val_size)
    summary = {
        "rows": {split: len(rows) for split, rows in splits.items()},
        "by_source": {split: dict(Counter(r["data_source"] for r in rows)) for split, rows in splits.items()},
        "dropped": dict(drops),
        "seed": args.seed,
        "val_size": args.val_size,
        "max_prompt_length": args.max_prompt_length,
    }
    for split, rows in splits.items():
        if split == "train" and not rows:
            raise SystemExit("no training rows left; see the drops: " + json.dumps(dict(drops)))
        write_atomically(
            out / f"{split}.parquet", lambda p, rows=rows: datasets.Dataset.from_list(rows).to_parquet(str(p))
        )
    write_text_atomically(out / "report.json", json.dumps(summary, indent=2))
    print(
        f"train {summary['rows']['train']} / val {summary['rows']['val']} rows in {out}; dropped "
        f"{sum(drops.values())}: {dict(drops) or 'none'}"
    )
    return summary


if __name__ == "__main__":
    main(sys.argv[1:])
