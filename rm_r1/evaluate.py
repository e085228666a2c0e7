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

Presentation order: every judgement shows the chosen reply as A or B by a coin seeded with
(``--seed``, pair id, sample index), or ``--both-orders`` judges each pair both ways and reports ``both`` (a pair is
right only if both orders are) and ``mean`` (the mean of the two). Verdicts are re-read from the stored responses at
scoring time with ``--verdict-rule``, so a finished run can be re-scored under another rule without new generations.

Voting@k (``--k 1,2,4,8``): max(k) samples per pair at ``--temperature`` (default 0.5), each in its own seeded
order; voting@k uses the first k samples (``rm_r1.scaling.voting``, or score sums in pointwise mode).

This module is the command line; the stages it runs are the modules of ``rm_r1.evaluation``.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rm_r1.backends import BACKENDS, JudgeBackend, Sampling
from rm_r1.benchmarks import BENCHMARKS, load_benchmark, replace_surrogates_in_pairs
from rm_r1.evaluation.modes import MODES, make_mode
from rm_r1.evaluation.plan import limit_records, plan_jobs
from rm_r1.evaluation.report import write_reports
from rm_r1.evaluation.run import run_judge
from rm_r1.evaluation.score import check_scorable, score_judgements
from rm_r1.evaluation.store import RESULTS_FILE, check_settings, read_judgements
from rm_r1.prompts import FAMILIES
from rm_r1.reward import RULES, UNPARSABLE_CREDIT
from rm_r1.scaling import FAILURE_RULES, TIE_RULES

log = logging.getLogger("rm_r1.evaluate")


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
    p.add_argument(
        "--verdict-rule",
        default="anywhere",
        choices=RULES,
        help="default anywhere: RM-R1's eval rule; rewardbench: allenai's generative rule ([[A]] wins if present, "
        "no verdict counts 0.5); see rm_r1.reward",
    )
    p.add_argument(
        "--allow-partial",
        action="store_true",
        help="RewardBench without every section: average the sections present (named in the report) instead of "
        "giving no overall score",
    )
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
    try:
        mode = make_mode(
            args.mode,
            args.prompt_family,
            prompt_file=args.prompt_file,
            rule=args.verdict_rule,
            tie=args.tie,
            failures=args.failures,
        )
    except ValueError as error:
        raise SystemExit(str(error)) from None
    temperature = args.temperature if args.temperature is not None else (0.5 if args.k else 0.0)
    if args.k and max(args.k) > 1 and temperature <= 0:
        raise SystemExit(f"voting over {max(args.k)} samples needs --temperature > 0, got {temperature}")
    sampling = Sampling(temperature=temperature, top_p=args.top_p, max_new_tokens=args.max_new_tokens)

    comparisons, repaired_pairs = replace_surrogates_in_pairs(
        limit_records(load_benchmark(args.benchmark, args.data), args.limit)
    )
    if not comparisons:
        raise SystemExit(f"--limit {args.limit} leaves no {args.benchmark} pairs to judge")
    if repaired_pairs:
        log.warning("%d pairs hold lone surrogates (invalid UTF-8); they were replaced by U+FFFD", repaired_pairs)
    check_scorable(args.benchmark, comparisons)
    log.info("%s: %d pairs", args.benchmark, len(comparisons))
    args.output_dir.mkdir(parents=True, exist_ok=True)
    settings = _settings(args, sampling)
    check_settings(args.output_dir, settings)
    results_path = args.output_dir / RESULTS_FILE
    jobs = plan_jobs(comparisons, args.seed, max(args.k) if args.k else 1, args.both_orders)
    failed = run_judge(
        make_backend(args), mode, comparisons, jobs, sampling, results_path, rule=args.verdict_rule, seed=args.seed
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
        mode,
        seed=args.seed,
        ks=args.k,
        both_orders=args.both_orders,
        allow_partial=args.allow_partial,
        unparsable_credit=UNPARSABLE_CREDIT.get(args.verdict_rule, 0.0) if args.mode == "pairwise" else 0.0,
    )
    summary = {
        "settings": {
            **settings,
            "verdict_rule": args.verdict_rule,
            "allow_partial": args.allow_partial,
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
    sys.stdout.write(write_reports(args.output_dir, args.benchmark, summary, mode.answer, plot=bool(args.k)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
