"""Prepare RM-R1 training data for verl (docs/rm_r1.md#training-data).

RL (default): preference pairs from Skywork-Reward-Preference-80K-v0.2 (without magpie_ultra), Code-Preference-Pairs
(shuffled with seed 42, first 8,000) and Math-Step-DPO-10K, each from its hub name or a local parquet/json/jsonl file
with the same columns -> judge prompts of the chosen family, balanced seeded A/B orders (or both orders), prompts over
the budget dropped -> ``train.parquet`` and a held-out ``val.parquet`` (verl RL rows). ``--exclude-sft SFT_SET``
leaves out the pairs of a distillation set (matched by content: normalised conversation and both replies, in either
order), as the paper's RL data for instruct models does (published as RM-R1-after-Distill-RLVR). The summary puts
each source's kept pairs next to the paper's count and names every reason a pair was dropped.

SFT (``--sft FILE_OR_HUB_NAME``): distillation rows in this project's layout (``conversation``, ``reply_a``,
``reply_b``, ``trace`` ending in the verdict, ``label``; the prompt is rendered with ``--family``/``--prompt-file``)
or in the published layout of gaotang/RM-R1-Distill-SFT (``context_messages``, the rendered prompt used as written,
and ``winner``, the trace) -> ``train.parquet`` / ``val.parquet`` with a ``messages`` column for verl's SFT trainer.

``--val-size`` > 0 holds out at least one pair (an error with fewer than 2 pairs); ``--val-size 0`` writes no
``val.parquet`` and removes one left by an earlier run. ``--output-dir`` is checked for writing before any work;
both files are written atomically. Bad rows are skipped and counted per reason in the printed summary.

    python scripts/prepare_rm_r1_data.py --tokenizer Qwen/Qwen2.5-7B-Instruct --family instruct --output-dir data/rm_r1
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from rm_r1.judge.prompts import FAMILIES, load_prompt
from rm_r1.training.data import (
    PAPER_PAIRS,
    PAPER_SKIPS,
    PROMPT_BUDGET,
    PUBLISHED_SFT_COLUMNS,
    SFT_COLUMNS,
    SFT_MAX_LENGTH,
    SOURCES,
    Report,
    SkippedRow,
    code_selection,
    column_names,
    convert,
    exclude_pairs,
    held_out,
    load_table,
    published_sft_row,
    require_columns,
    rl_rows,
    sft_layout,
    sft_pair_keys,
    sft_row,
    token_counts,
    within_budget,
)


def columns_help() -> str:
    """The input columns each source needs."""
    lines = [f"  --{name:<8} {', '.join(spec.columns)}" for name, spec in SOURCES.items()]
    lines.append(f"  --sft      {', '.join(SFT_COLUMNS)}  (or the published {', '.join(PUBLISHED_SFT_COLUMNS)})")
    return "input columns each source needs (hub name or local file):\n" + "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, epilog=columns_help(), formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--output-dir", required=True, help="where train.parquet and val.parquet are written")
    parser.add_argument(
        "--tokenizer",
        required=True,
        help="tokenizer (path or hub name) whose chat template renders the prompts; use the model you train",
    )
    parser.add_argument(
        "--family",
        choices=FAMILIES,
        required=True,
        help="judge prompt family: instruct (system + user) or reasoning (one user message)",
    )
    parser.add_argument("--prompt-file", default=None, help="your own judge instructions (see rm_r1.judge.prompts)")
    parser.add_argument("--sources", default="skywork,code,math", help=f"comma-separated subset of {','.join(SOURCES)}")
    for name, spec in SOURCES.items():
        parser.add_argument(
            f"--{name}",
            default=spec.hub_name,
            help=f"hub name or local parquet/json/jsonl with the columns of {spec.hub_name} (default: %(default)s)",
        )
    parser.add_argument("--seed", type=int, default=0, help="seed of the A/B orders and of the held-out split")
    parser.add_argument("--both-orders", action="store_true", help="every pair twice, chosen as A and as B")
    parser.add_argument(
        "--val-size",
        type=float,
        default=0.01,
        help="held-out pairs: a fraction (< 1, at least one pair) or a count; 0 for none (default: %(default)s)",
    )
    parser.add_argument(
        "--prompt-budget",
        type=int,
        default=PROMPT_BUDGET,
        help="drop prompts longer than this many tokens (default: %(default)s)",
    )
    parser.add_argument(
        "--sft",
        default=None,
        metavar="FILE",
        help="SFT mode: distillation rows (local file or hub name) with columns "
        f"{', '.join(SFT_COLUMNS)}, or {', '.join(PUBLISHED_SFT_COLUMNS)} (gaotang/RM-R1-Distill-SFT)",
    )
    parser.add_argument(
        "--exclude-sft",
        default=None,
        metavar="SFT_SET",
        help="RL mode: leave out the pairs of this distillation set (local file or hub name, either "
        "layout), matched by content; the paper does so for instruct models after distillation",
    )
    parser.add_argument(
        "--sft-max-length",
        type=int,
        default=SFT_MAX_LENGTH,
        help="SFT mode: drop examples (prompt + trace) longer than this (default: %(default)s)",
    )
    args = parser.parse_args(argv)
    args.sources = [s.strip() for s in args.sources.split(",") if s.strip()]
    unknown = sorted(set(args.sources) - set(SOURCES))
    if unknown or not args.sources:
        parser.error(f"--sources: unknown {unknown}; choose from {list(SOURCES)}")
    if args.sft and args.exclude_sft:
        parser.error("--exclude-sft applies to the RL preparation, not to --sft")
    return args


def _write(rows: list[dict[str, Any]], path: Path) -> None:
    """Atomically (``harness.files.write_atomically``)."""
    import datasets

    from harness.files import write_atomically

    write_atomically(path, lambda tmp: datasets.Dataset.from_list(rows).to_parquet(str(tmp)))


def _check_output_dir(path: Path) -> None:
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as err:
        raise ValueError(f"cannot write to --output-dir {path}: {err}") from err


def _rl(args: argparse.Namespace, tokenizer: Any, report: Report) -> dict[str, list[dict[str, Any]]]:
    pairs = []
    for name in args.sources:
        spec = SOURCES[name]
        table = load_table(getattr(args, name))
        require_columns(column_names(table), spec.columns, f"{spec.hub_name} ({getattr(args, name)})")
        rows = ((i, table[i]) for i in code_selection(len(table))) if name == "code" else enumerate(table)
        pairs.extend(convert(tqdm(rows, desc=f"reading {spec.hub_name}", unit="row"), name, report))
    if args.exclude_sft:
        keys, unreadable = sft_pair_keys(load_table(args.exclude_sft), f"--exclude-sft {args.exclude_sft}")
        report.exclusion.update(sft_pairs=len(keys), unreadable=unreadable)
        pairs = exclude_pairs(pairs, keys, report)
    val = held_out(len(pairs), args.val_size, args.seed)
    splits = {}
    for split, members in (
        ("train", [p for i, p in enumerate(pairs) if i not in val]),
        ("val", [p for i, p in enumerate(pairs) if i in val]),
    ):
        rows = rl_rows(members, split, args.family, args.prompt_file, args.seed, args.both_orders)
        counts = token_counts(
            tokenizer, [r["prompt"] for r in rows], add_generation_prompt=True, progress=f"prompt tokens ({split})"
        )
        splits[split] = within_budget(rows, counts, args.prompt_budget, report, split)
        report.labels[split] = dict(Counter(r["reward_model"]["ground_truth"] for r in splits[split]))
    return splits


def _sft(args: argparse.Namespace, tokenizer: Any, report: Report) -> dict[str, list[dict[str, Any]]]:
    table = load_table(args.sft)
    layout = sft_layout(column_names(table), f"SFT data ({args.sft})")
    if layout == "published" and (args.family != "instruct" or args.prompt_file):
        raise ValueError(
            f"SFT data ({args.sft}) is in the published layout: its rows hold the rendered "
            "instruct-family prompt, so it needs --family instruct and no --prompt-file"
        )
    columns = PUBLISHED_SFT_COLUMNS if layout == "published" else SFT_COLUMNS
    rows = []
    for index, row in enumerate(tqdm(table, desc="reading distillation rows", unit="row")):
        try:
            if not isinstance(row, dict) or not all(c in row for c in columns):
                raise SkippedRow("row is not an object with every column")
            if layout == "published":
                rows.append(published_sft_row(row, index))
            else:
                rows.append(sft_row(row, index, args.family, args.prompt_file))
        except SkippedRow as skipped:
            report.skip(args.sft, skipped.reason, index)
    report.kept[args.sft] = len(rows)
    val = held_out(len(rows), args.val_size, args.seed)
    splits = {}
    for split, members in (
        ("train", [r for i, r in enumerate(rows) if i not in val]),
        ("val", [r for i, r in enumerate(rows) if i in val]),
    ):
        counts = token_counts(
            tokenizer,
            [r["messages"] for r in members],
            add_generation_prompt=False,
            progress=f"example tokens ({split})",
        )
        splits[split] = within_budget(members, counts, args.sft_max_length, report, split)
        report.labels[split] = dict(Counter(r["extra_info"]["label"] for r in splits[split]))
    return splits


def _summary(report: Report, splits: dict[str, list[dict[str, Any]]]) -> str:
    lines = []
    for source, kept in report.kept.items():
        skipped = report.skipped.get(source, {})
        rows = report.skipped_rows.get(source, {})
        detail = ", ".join(f"{reason}: {n}, e.g. rows {rows[reason]}" for reason, n in sorted(skipped.items()))
        lines.append(f"{source}: {kept} kept; skipped {sum(skipped.values())}" + (f" ({detail})" if detail else ""))
        if source in PAPER_PAIRS:
            ours = {reason: n for reason, n in sorted(skipped.items()) if reason not in PAPER_SKIPS}
            lines.append(
                f"  the paper used {PAPER_PAIRS[source]} pairs of {source}; dropped here but kept by the "
                f"official pipeline: {sum(ours.values())} {ours}"
            )
    if report.exclusion:
        lines.append(
            f"--exclude-sft: {report.exclusion['sft_pairs']} distinct distillation pairs read "
            f"({report.exclusion['unreadable']} rows unreadable), {report.exclusion['matched']} found here; "
            f"removed {sum(report.excluded.values())} pairs {report.excluded}"
        )
    for split, rows in splits.items():
        per_source = Counter(r["data_source"] for r in rows)
        labels = report.labels.get(split, {})
        drops = {k.split("/", 1)[1]: n for k, n in report.over_budget.items() if k.startswith(split + "/")}
        lines.append(
            f"{split}: {len(rows)} rows {dict(per_source)}; labels {dict(sorted(labels.items()))}; "
            f"over the length budget, dropped {sum(drops.values())} {drops}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None, tokenizer: Any = None) -> Report:
    """Run the preparation; ``tokenizer`` overrides ``--tokenizer`` (tests pass one already loaded)."""
    args = parse_args(argv)
    load_prompt(args.family, args.prompt_file)  # a bad prompt file fails here, before any data is read
    out = Path(args.output_dir)
    _check_output_dir(out)  # and an unwritable output folder too
    if tokenizer is None:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(args.tokenizer)
    report = Report()
    splits = _sft(args, tokenizer, report) if args.sft else _rl(args, tokenizer, report)
    print(_summary(report, splits))
    if not splits["train"]:
        raise ValueError("no training rows left; see the counts above")
    if args.val_size > 0 and not splits["val"]:
        raise ValueError(
            "every held-out validation row was dropped (see the counts above); raise --val-size or "
            "--prompt-budget, or pass --val-size 0 for no validation split"
        )
    for split, rows in splits.items():
        report.rows[split] = len(rows)
        path = out / f"{split}.parquet"
        if rows:
            _write(rows, path)
        elif path.exists():  # --val-size 0: a val.parquet of an earlier run would overlap this train split
            path.unlink()
            print(f"removed {path} of an earlier run (no validation split now)")
    return report


if __name__ == "__main__":
    main(sys.argv[1:])
