"""Reward quality (the paper's ROC-AUC figure): how well each reward separates correct from incorrect responses.

For rows of (prompt, response, reference, correct) and a model, computes per row

* ``r``: the probability reward (``rlpr.score_response``, mean token probability of the reference; 0 when the
  response is invalid for it, as in training),
* ``r_hat``: the debiased reward ``rlpr.reward.debias(r, r')`` with r' from ``rlpr.score_direct_answer``,
* ``seq_likelihood``: the product of the reference tokens' probabilities (the VeriFree-style reward),
* ``rule``: the rule grader of validation (1 if the extracted answer matches the reference, else 0),

then each one's ROC-AUC against ``correct``, and writes ``scores.jsonl``, ``reward_quality.md`` / ``.json`` (the
table) and ``roc.png`` (ROC curves) to ``--output-dir``.

Input rows (``.jsonl``/``.json``/``.parquet``): ``prompt`` (chat messages, or a question string that gets the
``--format`` prompt of ``rlpr.data.prompts``), ``response``, ``reference``, ``correct`` (bool or 0/1), optionally
``answer_type`` (``math``, ``choice``, ``text``; default ``math``) for the rule grader.

    python scripts/reward_quality.py --model Qwen/Qwen2.5-7B --data rows.jsonl --output-dir rq_out
"""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from harness.rows import read_rows
from rlpr.answer import FORMAT_MODES
from rlpr.data.prompts import build_r1_messages
from rlpr.evaluation.validation import ANSWER_TYPES, extract_answer, rule_grade
from rlpr.reward import SHAPINGS, debias

logger = logging.getLogger("reward_quality")

SCORES = ("r", "r_hat", "seq_likelihood", "rule")
LABELS = {
    "r": "probability reward r",
    "r_hat": "debiased reward r̂",
    "seq_likelihood": "sequence likelihood",
    "rule": "rule grader",
}


def _check_binary(labels: Sequence[Any]) -> list[int]:
    out = []
    for i, y in enumerate(labels):
        if y not in (0, 1, True, False):
            raise ValueError(f"label {i} must be 0/1 or a bool, got {y!r}")
        out.append(int(y))
    if len(set(out)) < 2:
        raise ValueError("ROC-AUC needs both correct and incorrect rows; all labels are the same")
    return out


def roc_curve(scores: Sequence[float], labels: Sequence[Any]) -> tuple[list[float], list[float]]:
    """(false-positive rates, true-positive rates) from (0, 0) to (1, 1), one point per distinct score threshold."""
    y = _check_binary(labels)
    if len(scores) != len(y):
        raise ValueError(f"{len(scores)} scores but {len(y)} labels")
    pos, neg = sum(y), len(y) - sum(y)
    order = sorted(range(len(y)), key=lambda i: -scores[i])
    fpr, tpr = [0.0], [0.0]
    tp = fp = 0
    for rank, i in enumerate(order):
        tp += y[i]
        fp += 1 - y[i]
        if rank + 1 == len(order) or scores[order[rank + 1]] != scores[i]:  # close a group of tied scores
            fpr.append(fp / neg)
            tpr.append(tp / pos)
    return fpr, tpr


def roc_auc(scores: Sequence[float], labels: Sequence[Any]) -> float:
    """Area under the ROC curve (trapezoids; tied scores count one half), i.e. P(score of a correct row is higher)."""
    fpr, tpr = roc_curve(scores, labels)
    return sum((fpr[i] - fpr[i - 1]) * (tpr[i] + tpr[i - 1]) / 2 for i in range(1, len(fpr)))


def _prompt_ids(tokenizer: Any, prompt: Any, fmt: str) -> list[int]:
    messages = build_r1_messages(prompt, fmt) if isinstance(prompt, str) else list(prompt)
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def check_row(i: int, row: Mapping[str, Any]) -> None:
    for key in ("prompt", "response", "reference", "correct"):
        if key not in row:
            raise ValueError(f"row {i} has no {key!r} column; it has {sorted(row)}")
    if not isinstance(row["response"], str) or not isinstance(row["reference"], str) or not row["reference"].strip():
        raise ValueError(f"row {i}: response must be a str and reference a non-empty str")
    if row.get("answer_type", "math") not in ANSWER_TYPES:
        raise ValueError(f"row {i}: answer_type must be one of {ANSWER_TYPES}, got {row['answer_type']!r}")


def score_rows(
    model: Any,
    tokenizer: Any,
    rows: Sequence[Mapping[str, Any]],
    *,
    fmt: str = "R1",
    temperature: float = 1.0,
    shaping: str = "clip",
) -> list[dict[str, Any]]:
    """The four scores of every row (see the module docstring), plus ``r_prime``, ``valid`` and ``correct``."""
    import rlpr

    direct: dict[tuple[tuple[int, ...], str], float] = {}  # r' once per (prompt, reference)
    out = []
    for i, row in enumerate(rows):
        check_row(i, row)
        prompt_ids = _prompt_ids(tokenizer, row["prompt"], fmt)
        response_ids = tokenizer(row["response"], add_special_tokens=False)["input_ids"]
        reference = row["reference"]
        key = (tuple(prompt_ids), reference)
        if key not in direct:
            direct[key] = rlpr.score_direct_answer(model, tokenizer, prompt_ids, reference, temperature=temperature)
        r = rlpr.score_response(
            model, tokenizer, prompt_ids, response_ids, reference, mode=fmt, temperature=temperature
        )
        seq = rlpr.score_response(
            model,
            tokenizer,
            prompt_ids,
            response_ids,
            reference,
            mode=fmt,
            temperature=temperature,
            method="seq_likelihood",
        )
        prediction = extract_answer(row["response"])
        rule = prediction is not None and rule_grade(prediction, reference, row.get("answer_type", "math"))
        r_value = 0.0 if r is None else r
        out.append(
            {
                "index": i,
                "correct": int(row["correct"]),
                "valid": r is not None,
                "r": r_value,
                "r_prime": direct[key],
                "r_hat": debias(r_value, direct[key], shaping),
                "seq_likelihood": 0.0 if seq is None else seq,
                "rule": float(rule),
            }
        )
    invalid = sum(not s["valid"] for s in out)
    if invalid:
        logger.warning("%d of %d responses are invalid for a probability reward and score r = 0", invalid, len(out))
    return out


def quality_table(scored: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, float]]:
    """Per score: ROC-AUC against ``correct`` and the mean over correct and over incorrect rows."""
    labels = [s["correct"] for s in scored]
    table = {}
    for name in SCORES:
        values = [s[name] for s in scored]
        right = [v for v, y in zip(values, labels, strict=True) if y]
        wrong = [v for v, y in zip(values, labels, strict=True) if not y]
        table[name] = {
            "roc_auc": roc_auc(values, labels),
            "mean_correct": sum(right) / len(right),
            "mean_incorrect": sum(wrong) / len(wrong),
        }
    return table


def table_markdown(table: Mapping[str, Mapping[str, float]], n_rows: int, n_invalid: int) -> str:
    lines = ["| score | ROC-AUC | mean (correct) | mean (incorrect) |", "|---|---|---|---|"]
    for name, row in table.items():
        lines.append(
            f"| {LABELS[name]} | {row['roc_auc']:.3f} | {row['mean_correct']:.4f} | {row['mean_incorrect']:.4f} |"
        )
    lines.append("")
    lines.append(f"{n_rows} rows; {n_invalid} responses invalid for a probability reward (r = 0).")
    return "\n".join(lines) + "\n"


def plot_roc(scored: Sequence[Mapping[str, Any]], table: Mapping[str, Mapping[str, float]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [s["correct"] for s in scored]
    fig, ax = plt.subplots(figsize=(5, 5))
    for name in SCORES:
        fpr, tpr = roc_curve([s[name] for s in scored], labels)
        ax.plot(fpr, tpr, label=f"{LABELS[name]} (AUC {table[name]['roc_auc']:.2f})")
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1)
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.set_title("Reward quality: ROC against correctness")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def run(
    model_path: str,
    data: str | Path,
    output_dir: str | Path,
    *,
    fmt: str = "R1",
    temperature: float = 1.0,
    shaping: str = "clip",
    device: str = "cpu",
) -> dict[str, dict[str, float]]:
    """Score the rows of ``data`` with the model at ``model_path``, write the outputs, return the table."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    rows = read_rows(data)
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    model = AutoModelForCausalLM.from_pretrained(model_path, dtype="float32").to(device)
    model.eval()
    scored = score_rows(model, tokenizer, rows, fmt=fmt, temperature=temperature, shaping=shaping)
    table = quality_table(scored)
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "scores.jsonl").write_text("".join(json.dumps(s) + "\n" for s in scored))
    (out / "reward_quality.json").write_text(json.dumps(table, indent=2) + "\n")
    invalid = sum(not s["valid"] for s in scored)
    (out / "reward_quality.md").write_text(table_markdown(table, len(scored), invalid))
    plot_roc(scored, table, out / "roc.png")
    return table


def main(argv: Sequence[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True)
    p.add_argument("--data", required=True, help=".jsonl/.json/.parquet rows of prompt, response, reference, correct")
    p.add_argument("--output-dir", default="reward_quality_out")
    p.add_argument("--format", default="R1", choices=FORMAT_MODES)
    p.add_argument("--temperature", type=float, default=1.0, help="the sampling temperature of the responses")
    p.add_argument("--shaping", default="clip", choices=SHAPINGS, help="how r' debiases r")
    p.add_argument("--device", default="cpu", help="e.g. cuda")
    args = p.parse_args(argv)
    run(
        args.model,
        args.data,
        args.output_dir,
        fmt=args.format,
        temperature=args.temperature,
        shaping=args.shaping,
        device=args.device,
    )
    print((Path(args.output_dir) / "reward_quality.md").read_text(), end="")


if __name__ == "__main__":
    main()
