"""Evaluate a judge on RewardBench, RM-Bench or RMB: ``python -m rm_r1.evaluate --help``.

Builds every pair of the benchmark, asks the judge (pairwise verdicts, or DeepSeek-GRM pointwise scores), and writes
to ``--output-dir``:

* ``judgements.jsonl``: one line per judgement, appended as it arrives. A rerun with the same settings skips the
  judgements already there, so an interrupted run loses nothing (a torn last line is dropped and redone). A request
  the server refuses as such (``rm_r1.backends.REQUEST_ERROR_STATUS``, e.g. a prompt over its context) is stored as a
  failed judgement (``response`` null, ``error``) and read as no verdict; any other failure is not stored, so a rerun
  retries it, and the run ends with status 1 without a summary;
* ``summary.json``: settings, counts (pairs, judgements, parse failures, failed judgements, texts with lone
  surrogates replaced) and the benchmark scores, written atomically;
* ``summary.md``: the scores as a markdown table, with a PARTIAL note when subsets, sections, domains or parts of the
  benchmark are missing (the same text is printed); with ``--k``, ``scaling.png``: the score against k.

Presentation order (docs/rm_r1.md#evaluation): every judgement shows the chosen reply as A or B by a coin seeded with
(``--seed``, pair id, sample index), or ``--both-orders`` judges each pair both ways and reports ``both`` (a pair is
right only if both orders are) and ``mean`` (the mean of the two). Verdicts are re-read from the stored responses at
scoring time with ``--verdict-rule``, so a finished run can be re-scored under another rule without new generations.

Voting@k (``--k 1,2,4,8``): max(k) samples per pair at ``--temperature`` (default 0.5), each in its own seeded
order; voting@k uses the first k samples (``rm_r1.scaling.voting``, or score sums in pointwise mode).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import random
import sys
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rm_r1.backends import BACKENDS, JudgeBackend, JudgeRequest, Sampling, request_seed
from rm_r1.benchmarks import BENCHMARKS, Comparison, load_benchmark, replace_surrogates, replace_surrogates_in_pairs
from rm_r1.eval import SCORERS
from rm_r1.pointwise import build_pointwise_messages, parse_scores, pointwise_voting
from rm_r1.prompts import FAMILIES, build_judge_messages
from rm_r1.reward import RULES, parse_verdict
from rm_r1.scaling import FAILURE_RULES, TIE_RULES, swapped, unswap, voting

log = logging.getLogger("rm_r1.evaluate")

MODES = ("pairwise", "pointwise")
RESULTS_FILE, SUMMARY_FILE, TABLE_FILE, PLOT_FILE, SETTINGS_FILE = (
    "judgements.jsonl",
    "summary.json",
    "summary.md",
    "scaling.png",
    "settings.json",
)
HEADLINE = {"rewardbench": "score", "rmbench": "total", "rmb": "score"}
TABLE_COLUMNS = {
    "rewardbench": ("Chat", "Chat Hard", "Safety", "Reasoning", "score"),
    "rmbench": ("chat", "math", "code", "safety", "easy", "normal", "hard", "total"),
    "rmb": ("pairwise_helpfulness", "pairwise_harmlessness", "bon_helpfulness", "bon_harmlessness", "score"),
}
CHUNK = 1024  # judgements handed to the backend at a time (bounds memory; streams results between chunks)


@dataclass(frozen=True)
class Job:
    """One judgement: sample ``sample`` of pair ``pair_id``, shown with the chosen reply as B when ``swap``."""

    pair_id: str
    sample: int
    swap: bool


def plan_jobs(comparisons: Sequence[Comparison], seed: int, samples: int, both_orders: bool) -> list[Job]:
    """Every judgement of the run: both orders (samples 0 = chosen as A, 1 = chosen as B), or ``samples`` seeded
    orders per pair (``rm_r1.scaling.swapped``)."""
    if both_orders:
        return [Job(c.pair_id, s, bool(s)) for c in comparisons for s in (0, 1)]
    return [Job(c.pair_id, s, swapped(seed, c.pair_id, s)) for c in comparisons for s in range(samples)]


def judge_messages(
    comparison: Comparison, swap: bool, mode: str, family: str, prompt_file: str | None
) -> list[dict[str, str]]:
    """The judge's chat messages for one presentation order (pairwise RM-R1 prompt or pointwise GRM prompt)."""
    a, b = (comparison.rejected, comparison.chosen) if swap else (comparison.chosen, comparison.rejected)
    if mode == "pointwise":
        return build_pointwise_messages(comparison.conversation, a, b, family)
    return build_judge_messages(comparison.conversation, a, b, family=family, prompt_file=prompt_file)


def read_judgements(path: Path) -> dict[tuple[str, int], dict[str, Any]]:
    """Stored judgements by (pair_id, sample); an unreadable line is an error naming it."""
    done: dict[tuple[str, int], dict[str, Any]] = {}
    if not path.exists():
        return done
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        try:
            record = json.loads(line)
            done[(record["pair_id"], record["sample"])] = record
        except (ValueError, KeyError, TypeError) as error:
            raise ValueError(f"{path}:{number}: not a judgement record ({error})") from error
    return done


def read_response(response: str | None, swap: bool, mode: str, rule: str) -> dict[str, Any]:
    """What a response says about the ORIGINAL order (chosen first): ``pick`` (0 chosen, 1 rejected, None) for a
    pairwise verdict; ``scores`` [chosen, rejected] (or None) for pointwise scores. A failed judgement (None) says
    nothing."""
    if response is None:
        return {"scores": None} if mode == "pointwise" else {"pick": None}
    if mode == "pointwise":
        scores = parse_scores(response)
        if scores is not None and swap:
            scores = scores[::-1]
        return {"scores": None if scores is None else list(scores)}
    return {"pick": unswap(parse_verdict(response, rule), swap)}


def _repair_tail(path: Path) -> None:
    """Make appends start on a fresh line: end a complete last record with its newline, cut a torn one."""
    data = path.read_bytes() if path.exists() else b""
    if not data or data.endswith(b"\n"):
        return
    head, newline, last = data.rpartition(b"\n")
    try:
        json.loads(last)
    except ValueError:
        log.warning("%s: dropping a torn last line (%d bytes); it will be judged again", path, len(last))
        os.truncate(path, len(head + newline))  # one call: a kill here cannot lose the complete lines
        return
    with path.open("ab") as out:
        out.write(b"\n")


def run_judge(
    backend: JudgeBackend,
    comparisons: Sequence[Comparison],
    jobs: Sequence[Job],
    sampling: Sampling,
    results_path: Path,
    *,
    mode: str,
    family: str,
    prompt_file: str | None,
    rule: str,
    seed: int,
) -> int:
    """Judge every job not yet in ``results_path``, appending one json line per judgement as it arrives (lone
    surrogates in a reply replaced and counted in ``surrogates_replaced``). A permanently refused request is stored
    as a failed judgement (``response`` None, ``error``).

    Returns the number of judgements that failed for a reason a retry may fix (not written: a rerun retries them).
    """
    from tqdm import tqdm

    by_id = {c.pair_id: c for c in comparisons}
    _repair_tail(results_path)
    done = read_judgements(results_path)
    pending = [job for job in jobs if (job.pair_id, job.sample) not in done]
    left = Counter(job.pair_id for job in pending)
    log.info(
        "%d judgements to make (%d stored already) for %d pairs", len(pending), len(jobs) - len(pending), len(left)
    )
    failed = 0
    bar = tqdm(total=len(left), unit="pair", desc="judging", dynamic_ncols=True)
    with results_path.open("a", encoding="utf-8") as out:
        for start in range(0, len(pending), CHUNK):
            chunk = pending[start : start + CHUNK]
            requests = [
                JudgeRequest(
                    judge_messages(by_id[j.pair_id], j.swap, mode, family, prompt_file),
                    request_seed(seed, j.pair_id, j.sample),
                )
                for j in chunk
            ]
            for completion in backend.generate(requests, sampling):
                job = chunk[completion.index]
                text, replaced = (None, 0) if completion.text is None else replace_surrogates(completion.text)
                if text is None and not completion.permanent:
                    failed += 1
                    log.warning("judgement %s #%d failed: %s", job.pair_id, job.sample, completion.error)
                    continue
                reading = read_response(text, job.swap, mode, rule)
                record = {"pair_id": job.pair_id, "sample": job.sample, "swap": job.swap, **reading, "rule": rule}
                record["response"] = text
                if text is None:
                    log.error(
                        "judgement %s #%d refused by the server, stored as failed (no verdict): %s",
                        job.pair_id,
                        job.sample,
                        completion.error,
                    )
                    record["error"] = replace_surrogates(str(completion.error))[0]
                if replaced:
                    record["surrogates_replaced"] = replaced
                record["meta"] = by_id[job.pair_id].meta
                out.write(json.dumps(record, ensure_ascii=False) + "\n")
                out.flush()
                left[job.pair_id] -= 1
                if left[job.pair_id] == 0:
                    bar.update(1)
    bar.close()
    return failed


def _vote(readings: list[dict[str, Any]], mode: str, rng: random.Random, tie: str, failures: str) -> tuple[bool, float]:
    """(correct, agreement) of a pair from its first k readings."""
    if mode == "pointwise":
        vote = pointwise_voting([None if r["scores"] is None else tuple(r["scores"]) for r in readings], 2, rng)
        parsed = len(readings) - vote.failures
        winners = Counter(
            0 if r["scores"][0] > r["scores"][1] else 1 if r["scores"][1] > r["scores"][0] else None
            for r in readings
            if r["scores"] is not None
        )
        agreement = winners.get(vote.decision, 0) / len(readings) if parsed else 0.0
        return vote.decision == 0, agreement
    result = voting([r["pick"] for r in readings], rng, tie=tie, failures=failures)
    return result.decision == 0, result.agreement


def score_judgements(
    benchmark: str,
    comparisons: Sequence[Comparison],
    judgements: dict[tuple[str, int], dict[str, Any]],
    *,
    mode: str,
    rule: str,
    seed: int,
    ks: Sequence[int] | None,
    both_orders: bool,
    tie: str,
    failures: str,
) -> dict[str, Any]:
    """Benchmark scores from the stored judgements, re-reading every response under ``rule``.

    Returns {"parse_failures": count, "failed_judgements": count, "results": {label: {"scores", "accuracy",
    ["agreement"]}}} with labels ``greedy`` (one judgement per pair), ``both`` / ``mean`` (``--both-orders``) or
    ``voting@k`` for each k. A pair correct = its chosen reply wins; ``accuracy`` = mean correct over pairs. A failed
    judgement (no response) reads like an unparsable one (wrong alone; ``failures`` decides in voting) but is counted
    in ``failed_judgements``, not ``parse_failures``.
    """
    readings: dict[str, list[dict[str, Any]]] = defaultdict(list)
    parse_failures = failed_judgements = 0
    for (pair_id, sample), record in sorted(judgements.items()):
        reading = read_response(record["response"], record["swap"], mode, rule)
        if record["response"] is None:
            failed_judgements += 1
        else:
            parse_failures += next(iter(reading.values())) is None
        readings[pair_id].append({"sample": sample, **reading})
    missing = [c.pair_id for c in comparisons if c.pair_id not in readings]
    if missing:
        raise ValueError(f"{len(missing)} pairs have no judgement (first: {missing[:3]}); rerun to judge them")
    scorer = SCORERS[benchmark]

    def result(correct: dict[str, float], agreement: dict[str, float] | None = None) -> dict[str, Any]:
        records = [{**c.meta, "correct": correct[c.pair_id]} for c in comparisons]
        out = {"scores": scorer(records), "accuracy": sum(correct.values()) / len(correct)}
        if agreement is not None:
            out["agreement"] = sum(agreement.values()) / len(agreement)
        return out

    def pick_correct(reading: dict[str, Any], pair_id: str, sample: int) -> bool:
        if mode == "pairwise":
            return reading["pick"] == 0
        return _vote([reading], mode, random.Random(f"{seed}/{pair_id}/tie/{sample}"), tie, failures)[0]

    results: dict[str, Any] = {}
    if both_orders:
        per_order = {
            c.pair_id: [pick_correct(r, c.pair_id, r["sample"]) for r in readings[c.pair_id]] for c in comparisons
        }
        if any(len(v) != 2 for v in per_order.values()):
            raise ValueError("--both-orders needs exactly two judgements per pair (samples 0 and 1)")
        results["both"] = result({p: float(all(v)) for p, v in per_order.items()})
        results["mean"] = result({p: sum(v) / 2 for p, v in per_order.items()})
    elif ks:
        for k in ks:
            short = [c.pair_id for c in comparisons if len(readings[c.pair_id]) < k]
            if short:
                raise ValueError(f"voting@{k} needs {k} judgements per pair; {len(short)} pairs have fewer")
            correct, agreement = {}, {}
            for c in comparisons:
                rng = random.Random(f"{seed}/{c.pair_id}/vote/{k}")
                ok, agree = _vote(readings[c.pair_id][:k], mode, rng, tie, failures)
                correct[c.pair_id], agreement[c.pair_id] = float(ok), agree
            results[f"voting@{k}"] = result(correct, agreement)
    else:
        results["greedy"] = result(
            {c.pair_id: float(pick_correct(readings[c.pair_id][0], c.pair_id, 0)) for c in comparisons}
        )
    return {"parse_failures": parse_failures, "failed_judgements": failed_judgements, "results": results}


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


MISSING_KEYS = {
    "rewardbench": (("missing_sections", "sections"), ("missing_subsets", "subsets")),
    "rmbench": (("missing_domains", "domains"),),
    "rmb": (("missing_parts", "parts"),),
}
"""Per benchmark: the keys under which its scorer lists what the data lacks, and what they are called."""


def partial_note(benchmark: str, scores: dict[str, Any]) -> str | None:
    """A warning line when the scores cover only part of the benchmark (None when it is complete)."""
    lacking = [
        f"{len(scores[key])} {name} ({', '.join(scores[key])})" for key, name in MISSING_KEYS[benchmark] if scores[key]
    ]
    if not lacking:
        return None
    return (
        f"PARTIAL {benchmark}: the data lacks {'; '.join(lacking)}; the score averages only what is present and "
        "is not comparable with the full benchmark's."
    )


def summary_text(benchmark: str, summary: dict[str, Any]) -> str:
    """summary.md (also printed): the score table, a PARTIAL note if the benchmark is incomplete, and the counts of
    unparsable, failed and repaired judgements."""
    results = summary["results"]
    lines = [markdown_table(benchmark, results)]
    note = partial_note(benchmark, next(iter(results.values()))["scores"])
    if note:
        lines.append(note + "\n")
    what = "scores" if summary["settings"]["mode"] == "pointwise" else "verdict"
    lines.append(
        f"{summary['parse_failures']} of {summary['judgements']} judgements had no parsable {what}; "
        f"{summary['failed_judgements']} were refused by the server and count as no {what}; lone surrogates were "
        f"replaced in {summary['surrogates_replaced']['data']} pairs and {summary['surrogates_replaced']['replies']} "
        "replies.\n"
    )
    return "\n".join(lines)


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def check_scorable(benchmark: str, comparisons: Sequence[Comparison]) -> None:
    """Run the benchmark's scorer on the pairs (all scored wrong) before any judging, so that data it cannot score
    fails now, not after the judge has run."""
    SCORERS[benchmark]([{**c.meta, "correct": 0.0} for c in comparisons])


def plot_scaling(benchmark: str, results: dict[str, Any], path: Path) -> None:
    """The benchmark's headline score against k (log2 axis), one point per voting@k."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ks = [int(label.split("@")[1]) for label in results]
    scores = [100 * results[label]["scores"][HEADLINE[benchmark]] for label in results]
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


def _limit(comparisons: list[Comparison], limit: int | None) -> list[Comparison]:
    """The comparisons of the first ``limit`` benchmark records (an RM-Bench sample or an RMB best-of-N group keeps
    all its pairs, so the scorers see whole records)."""
    if limit is None:
        return comparisons
    keep: dict[Any, None] = {}
    result = []
    for c in comparisons:
        key = (c.meta.get("domain"), c.meta["id"]) if "chosen_style" in c.meta else c.meta.get("group", c.pair_id)
        if key not in keep:
            if len(keep) == limit:
                continue
            keep[key] = None
        result.append(c)
    return result


def _ks(text: str) -> list[int]:
    try:
        ks = sorted({int(part) for part in text.split(",")})
    except ValueError:
        raise argparse.ArgumentTypeError(f"--k takes comma-separated integers such as 1,2,4,8, got {text!r}") from None
    if ks[0] < 1:
        raise argparse.ArgumentTypeError(f"every k must be >= 1, got {text!r}")
    return ks


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m rm_r1.evaluate",
        description="Evaluate a pairwise (RM-R1) or pointwise (DeepSeek-GRM) judge on RewardBench, RM-Bench or RMB.",
    )
    p.add_argument("--benchmark", required=True, choices=BENCHMARKS)
    p.add_argument("--data", help="local file/folder, or hub dataset name (default: the benchmark's hub dataset)")
    p.add_argument("--model", required=True, help="checkpoint path (hf, vllm) or the served model name (openai)")
    p.add_argument("--prompt-family", required=True, choices=FAMILIES, help="never guessed from the model name")
    p.add_argument("--backend", required=True, choices=BACKENDS)
    p.add_argument("--output-dir", required=True, type=Path)
    p.add_argument("--mode", default="pairwise", choices=MODES, help="pairwise verdicts or pointwise GRM scores")
    p.add_argument("--prompt-file", help="own pairwise judge instructions (see rm_r1.prompts.load_prompt)")
    p.add_argument("--verdict-rule", default="anywhere", choices=RULES, help="default: the reference's eval rule")
    p.add_argument("--seed", type=int, default=0, help="seeds the A/B order coins, sampling and tie-breaks")
    p.add_argument("--both-orders", action="store_true", help="judge every pair in both A/B orders")
    p.add_argument("--k", type=_ks, help="voting@k for each k, e.g. 1,2,4,8 (max(k) samples per pair)")
    p.add_argument("--temperature", type=float, help="default 0 (greedy), or 0.5 with --k")
    p.add_argument("--top-p", type=float, default=1.0)
    p.add_argument("--max-new-tokens", type=int, default=8192)
    p.add_argument("--tie", default="random", choices=TIE_RULES, help="pairwise voting ties: seeded coin, or wrong")
    p.add_argument("--failures", default="abstain", choices=FAILURE_RULES, help="unparsable samples in pairwise voting")
    p.add_argument("--limit", type=int, help="only the first N benchmark records (smoke runs)")
    hf = p.add_argument_group("hf backend")
    hf.add_argument("--batch-size", type=int, default=4)
    hf.add_argument("--device", help="default: cuda if available, else cpu")
    hf.add_argument("--dtype", default="auto")
    api = p.add_argument_group("openai backend")
    api.add_argument("--base-url", help="server URL with its API prefix, e.g. http://127.0.0.1:8000/v1")
    api.add_argument("--api-key-env", default="OPENAI_API_KEY", help="environment variable holding the API key")
    api.add_argument("--concurrency", type=int, default=16)
    api.add_argument("--retries", type=int, default=3)
    api.add_argument("--timeout", type=float, default=600.0, help="seconds per request")
    api.add_argument("--backoff", type=float, default=1.0, help="seconds before the first retry, doubling after")
    vl = p.add_argument_group("vllm backend")
    vl.add_argument("--tensor-parallel-size", type=int, default=1)
    vl.add_argument("--gpu-memory-utilization", type=float, default=0.9)
    vl.add_argument("--max-model-len", type=int)
    return p


def make_backend(args: argparse.Namespace) -> JudgeBackend:
    if args.backend == "hf":
        from rm_r1.backends import TransformersBackend

        return TransformersBackend(args.model, batch_size=args.batch_size, device=args.device, dtype=args.dtype)
    if args.backend == "openai":
        from rm_r1.backends import OpenAIBackend

        if not args.base_url:
            raise SystemExit("--backend openai needs --base-url (e.g. http://127.0.0.1:8000/v1)")
        return OpenAIBackend(
            args.base_url,
            args.model,
            api_key=os.environ.get(args.api_key_env),
            concurrency=args.concurrency,
            retries=args.retries,
            timeout=args.timeout,
            backoff=args.backoff,
        )
    from rm_r1.backends import VLLMBackend

    return VLLMBackend(
        args.model,
        tensor_parallel_size=args.tensor_parallel_size,
        gpu_memory_utilization=args.gpu_memory_utilization,
        max_model_len=args.max_model_len,
    )


def _settings(args: argparse.Namespace, sampling: Sampling) -> dict[str, Any]:
    """What the stored judgements depend on; a resumed run must match it (the sample count may grow)."""
    return {
        "benchmark": args.benchmark,
        "data": args.data,
        "model": args.model,
        "prompt_family": args.prompt_family,
        "mode": args.mode,
        "prompt_file": args.prompt_file,
        "seed": args.seed,
        "both_orders": args.both_orders,
        "sampling": dataclasses.asdict(sampling),
    }


def _check_settings(output_dir: Path, settings: dict[str, Any]) -> None:
    path = output_dir / SETTINGS_FILE
    if path.exists():
        stored = json.loads(path.read_text(encoding="utf-8"))
        changed = sorted(key for key in set(stored) | set(settings) if stored.get(key) != settings.get(key))
        if changed:
            details = ", ".join(f"{k}: {stored.get(k)!r} -> {settings.get(k)!r}" for k in changed)
            raise SystemExit(
                f"{output_dir} holds judgements made with other settings ({details}); use another --output-dir"
            )
    else:
        _write_atomic(path, json.dumps(settings, indent=2) + "\n")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.benchmark == "rmb" and not args.data:
        parser.error(
            "--benchmark rmb needs --data PATH (the folder of RMB's json files, RMB_dataset): RMB has no hub copy"
        )
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    if args.both_orders and args.k:
        raise SystemExit("--both-orders and --k exclude each other: voting@k already draws an order per sample")
    if args.mode == "pointwise" and args.prompt_file:
        raise SystemExit("--prompt-file replaces the pairwise judge prompt; pointwise mode has its own prompt")
    temperature = args.temperature if args.temperature is not None else (0.5 if args.k else 0.0)
    if args.k and max(args.k) > 1 and temperature <= 0:
        raise SystemExit(f"voting over {max(args.k)} samples needs --temperature > 0, got {temperature}")
    sampling = Sampling(temperature=temperature, top_p=args.top_p, max_new_tokens=args.max_new_tokens)
    samples = max(args.k) if args.k else 1

    comparisons, repaired_pairs = replace_surrogates_in_pairs(
        _limit(load_benchmark(args.benchmark, args.data), args.limit)
    )
    if not comparisons:
        raise SystemExit(f"--limit {args.limit} leaves no {args.benchmark} pairs to judge")
    if repaired_pairs:
        log.warning("%d pairs hold lone surrogates (invalid UTF-8); they were replaced by U+FFFD", repaired_pairs)
    check_scorable(args.benchmark, comparisons)
    log.info("%s: %d pairs", args.benchmark, len(comparisons))
    args.output_dir.mkdir(parents=True, exist_ok=True)
    settings = _settings(args, sampling)
    _check_settings(args.output_dir, settings)
    results_path = args.output_dir / RESULTS_FILE
    jobs = plan_jobs(comparisons, args.seed, samples, args.both_orders)
    failed = run_judge(
        make_backend(args),
        comparisons,
        jobs,
        sampling,
        results_path,
        mode=args.mode,
        family=args.prompt_family,
        prompt_file=args.prompt_file,
        rule=args.verdict_rule,
        seed=args.seed,
    )
    if failed:
        log.error(
            "%d judgements failed in the backend and were not stored; rerun the same command to retry them", failed
        )
        return 1
    wanted = {(job.pair_id, job.sample) for job in jobs}
    judgements = {key: record for key, record in read_judgements(results_path).items() if key in wanted}
    scored = score_judgements(
        args.benchmark,
        comparisons,
        judgements,
        mode=args.mode,
        rule=args.verdict_rule,
        seed=args.seed,
        ks=args.k,
        both_orders=args.both_orders,
        tie=args.tie,
        failures=args.failures,
    )
    summary = {
        "settings": {
            **settings,
            "verdict_rule": args.verdict_rule,
            "k": args.k,
            "tie": args.tie,
            "failures": args.failures,
        },
        "pairs": len(comparisons),
        "judgements": len(wanted),
        "surrogates_replaced": {
            "data": repaired_pairs,
            "replies": sum("surrogates_replaced" in record for record in judgements.values()),
        },
        **scored,
    }
    text = summary_text(args.benchmark, summary)
    _write_atomic(args.output_dir / SUMMARY_FILE, json.dumps(summary, indent=2) + "\n")
    _write_atomic(args.output_dir / TABLE_FILE, text)
    if args.k:
        plot_scaling(args.benchmark, scored["results"], args.output_dir / PLOT_FILE)
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
