"""What a finished run reports: summary.json, summary.md (also printed) and, with ``--k``, scaling.png."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rm_r1.evaluation.store import PLOT_FILE, SUMMARY_FILE, TABLE_FILE, write_atomic

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
    categories = category_table(results)
    if categories:
        lines.append(categories)
    lines.append(
        f"{summary['parse_failures']} of {summary['judgements']} judgements had no parsable {answer}; "
        f"{summary['failed_judgements']} were refused by the server and count as no {answer}; lone surrogates were "
        f"replaced in {summary['surrogates_replaced']['data']} pairs and {summary['surrogates_replaced']['replies']} "
        "replies.\n"
    )
    return "\n".join(lines)


def plot_scaling(benchmark: str, results: dict[str, Any], path: Path) -> None:
    """The benchmark's headline score against k (log2 axis), one point per voting@k."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = [label for label in results if results[label]["scores"][HEADLINE[benchmark]] is not None]
    ks = [int(label.split("@")[1]) for label in shown]
    scores = [100 * results[label]["scores"][HEADLINE[benchmark]] for label in shown]
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.plot(ks, scores, marker="o")
    ax.set_xscale("log", base=2)
    ax.set_xticks(ks, [str(k) for k in ks])
    ax.set_xlabel("k (judge samples per pair)")
    ax.set_ylabel(f"{benchmark} {HEADLINE[benchmark]} (%)")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_reports(output_dir: Path, benchmark: str, summary: dict[str, Any], answer: str, plot: bool) -> str:
    """Write summary.json and summary.md atomically, and scaling.png when ``plot``; returns the summary.md text."""
    text = summary_text(benchmark, summary, answer)
    write_atomic(output_dir / SUMMARY_FILE, json.dumps(summary, indent=2) + "\n")
    write_atomic(output_dir / TABLE_FILE, text)
    if plot:
        plot_scaling(benchmark, summary["results"], output_dir / PLOT_FILE)
    return text
