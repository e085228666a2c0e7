"""What a finished run reports: summary.json, summary.md (also printed) and, with ``--k``, scaling.png.

``python -m rm_r1.evaluation.report OUT.png RUN_DIR [RUN_DIR ...]`` draws the voting curves of several finished runs
in one plot (e.g. a pairwise run and a pointwise run, each with ``--meta-rm``: pairwise, pointwise and meta-RM guided
voting against k)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from harness.files import write_text_atomically
from rm_r1.evaluation.store import PLOT_FILE, SUMMARY_FILE, TABLE_FILE

HEADLINE = {"rewardbench": "score", "rmbench": "total", "rmb": "score"}
TABLE_COLUMNS = {
    "rewardbench": ("Chat", "Chat Hard", "Safety", "Reasoning", "score"),
    "rmbench": ("chat", "math", "code", "safety", "easy", "normal", "hard", "total"),
    "rmb": ("pairwise_helpfulness", "pairwise_harmlessness", "bon_helpfulness", "bon_harmlessness", "score"),
}
MISSING_KEYS = {
    "rewardbench": (("missing_sections", "sections"), ("missing_subsets", "subsets")),
    "rmbench": (("missing_domains", "domains"),),
    "rmb": (("missing_parts", "parts"),),
}
"""Per benchmark: the keys under which its scorer lists what the data lacks, and what they are called."""


def markdown_table(benchmark: str, results: dict[str, Any]) -> str:
    """Scores in percent, one row per result label, the benchmark's parts as columns."""
    columns = TABLE_COLUMNS[benchmark]
    lines = ["| run | " + " | ".join(columns) + " | pair accuracy |", "|---" * (len(columns) + 2) + "|"]
    for label, result in results.items():
        cells = []
        for column in columns:
            value = result["scores"].get(column)
            if isinstance(value, dict):  # an RM-Bench domain: its total
                value = value["total"]
            cells.append("n/a" if value is None else f"{100 * value:.1f}")
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {100 * result['accuracy']:.1f} |")
    return "\n".join(lines) + "\n"


def partial_note(benchmark: str, scores: dict[str, Any]) -> str | None:
    """A warning line when the scores cover only part of the benchmark (None when it is complete)."""
    lacking = [
        f"{len(scores[key])} {name} ({', '.join(scores[key])})" for key, name in MISSING_KEYS[benchmark] if scores[key]
    ]
    if not lacking:
        return None
    note = f"PARTIAL {benchmark}: the data lacks {'; '.join(lacking)}; "
    if benchmark == "rewardbench" and scores["missing_sections"]:
        if scores.get("score") is None:
            return note + "no overall score (pass --allow-partial to average the sections present)."
        return (
            note + f"--allow-partial: the score averages only {', '.join(scores['averaged_sections'])} and is not "
            "comparable with the full benchmark's."
        )
    return note + "the score averages only what is present and is not comparable with the full benchmark's."


def category_table(results: dict[str, Any]) -> str | None:
    """RMB's per-category scores (``category_path``) in percent, one column per result label; None when the scores
    hold no categories."""
    labels = [label for label, result in results.items() if result["scores"].get("categories")]
    if not labels:
        return None
    categories = sorted({c for label in labels for c in results[label]["scores"]["categories"]})
    lines = ["| category | " + " | ".join(labels) + " | count |", "|---" * (len(labels) + 2) + "|"]
    for category in categories:
        cells = [results[label]["scores"]["categories"].get(category) for label in labels]
        count = next(cell["count"] for cell in cells if cell is not None)
        shown = ["n/a" if cell is None else f"{100 * cell['accuracy']:.1f}" for cell in cells]
        lines.append(f"| {category} | " + " | ".join(shown) + f" | {count} |")
    return "\n".join(lines) + "\n"


def summary_text(benchmark: str, summary: dict[str, Any], answer: str) -> str:
    """summary.md (also printed): the score table, a PARTIAL note if the benchmark is incomplete, and the counts of
    unparsable, failed and repaired judgements (``answer``: what the judge answers with, e.g. ``verdict``)."""
    results = summary["results"]
    lines = [markdown_table(benchmark, results)]
    note = partial_note(benchmark, next(iter(results.values()))["scores"])
    if note:
        lines.append(note + "\n")
    if "best_of_n" in summary:
        lines.append(bon_table(summary["best_of_n"]))
    categories = category_table(results)
    if categories:
        lines.append(categories)
    lines.append(
        f"{summary['parse_failures']} of {summary['judgements']} judgements had no parsable {answer}; "
        f"{summary['failed_judgements']} were refused by the server and count as no {answer}; lone surrogates were "
        f"replaced in {summary['surrogates_replaced']['data']} pairs and {summary['surrogates_replaced']['replies']} "
        "replies.\n"
    )
    if "truncated_judgements" in summary:
        unknown = summary.get("truncation_unknown", 0)
        lines.append(
            f"{summary['truncated_judgements']} judgements stopped at the generation budget or the model's context "
            "before ending (read as they are)"
            + (f"; {unknown} came from a backend that does not report it" if unknown else "")
            + ".\n"
        )
    return "\n".join(lines)


def bon_table(best_of_n: dict[str, Any]) -> str:
    """The ``--bon-strategy`` results: accuracy per RMB section and overall, judge calls per record, re-asks and
    coin decisions (``n/a`` where a strategy has none)."""
    columns = ("bon_helpfulness", "bon_harmlessness", "accuracy")
    counts = ("judge_calls_per_record", "reasks", "coin_decisions")
    lines = ["| best-of-N strategy | " + " | ".join(columns + counts) + " |", "|---" * (len(columns) + 4) + "|"]
    for strategy, result in best_of_n.items():
        cells = [f"{100 * result[c]:.1f}" if c in result else "n/a" for c in columns]
        cells += [f"{result[c]:.2f}" if isinstance(result.get(c), float) else str(result.get(c, "n/a")) for c in counts]
        lines.append(f"| {strategy} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


SERIES = {"voting": "voting", "meta": "meta-RM guided voting"}
"""Result label prefix (``voting@k``, ``meta@k``) -> the curve's name in the plots."""


def scaling_curves(results: dict[str, Any], benchmark: str) -> dict[str, list[tuple[int, float]]]:
    """(k, headline score in %) per voting series of one run's results, by label prefix (``SERIES``)."""
    curves: dict[str, list[tuple[int, float]]] = {}
    for label, result in results.items():
        prefix, _, k = label.partition("@")
        score = result["scores"][HEADLINE[benchmark]]
        if prefix in SERIES and score is not None:  # a partial run without --allow-partial has no headline score
            curves.setdefault(prefix, []).append((int(k), 100 * score))
    return curves


def plot_scaling(benchmark: str, runs: dict[str, dict[str, Any]], path: Path) -> None:
    """The benchmark's headline score against k (log2 axis): one curve per voting series (``SERIES``) of each run
    (``runs``: a name such as the run's mode -> its results)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    ks: set[int] = set()
    for run, results in runs.items():
        for prefix, points in scaling_curves(results, benchmark).items():
            ax.plot(*zip(*points), marker="o", label=f"{run} {SERIES[prefix]}")
            ks.update(k for k, _ in points)
    ax.set_xscale("log", base=2)
    ax.set_xticks(sorted(ks), [str(k) for k in sorted(ks)])
    ax.legend(fontsize=8)
    ax.set_xlabel("k (judge samples per pair)")
    ax.set_ylabel(f"{benchmark} {HEADLINE[benchmark]} (%)")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_reports(output_dir: Path, benchmark: str, summary: dict[str, Any], answer: str, plot: bool) -> str:
    """Write summary.json and summary.md atomically, and scaling.png when ``plot``; returns the summary.md text."""
    text = summary_text(benchmark, summary, answer)
    write_text_atomically(output_dir / SUMMARY_FILE, json.dumps(summary, indent=2) + "\n")
    write_text_atomically(output_dir / TABLE_FILE, text)
    if plot:
        plot_scaling(benchmark, {summary["settings"]["mode"]: summary["results"]}, output_dir / PLOT_FILE)
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m rm_r1.evaluation.report",
        description="Plot the voting curves (voting@k, meta@k) of finished rm_r1.evaluate runs of one benchmark.",
    )
    parser.add_argument("output", type=Path, help="the PNG to write")
    parser.add_argument("runs", type=Path, nargs="+", help="--output-dir folders of runs made with --k")
    args = parser.parse_args(argv)
    runs: dict[str, dict[str, Any]] = {}
    benchmarks = set()
    for folder in args.runs:
        summary = json.loads((folder / SUMMARY_FILE).read_text(encoding="utf-8"))
        if not scaling_curves(summary["results"], summary["settings"]["benchmark"]):
            raise SystemExit(f"{folder}: the run has no voting@k results (it was made without --k)")
        name = summary["settings"]["mode"]
        runs[name if name not in runs else f"{name} ({folder.name})"] = summary["results"]
        benchmarks.add(summary["settings"]["benchmark"])
    if len(benchmarks) != 1:
        raise SystemExit(f"the runs are of different benchmarks ({sorted(benchmarks)}); plot one benchmark at a time")
    plot_scaling(benchmarks.pop(), runs, args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
