"""Evaluate a judge on RewardBench, RM-Bench or RMB: ``python -m rm_r1.evaluate --help``.

Builds every pair of the benchmark, asks the judge (pairwise verdicts, or DeepSeek-GRM pointwise scores), and writes
to ``--output-dir``:

* ``judgements.jsonl``: one line per judgement, appended as it arrives. A rerun with the same settings skips the
  judgements already there, so an interrupted run loses nothing (a torn last line is dropped and redone). A request
  the server refuses as such (``harness.chat_client.REQUEST_ERROR_STATUS``, e.g. a prompt over its context)
  is stored as a failed judgement (``response`` null, ``error``) and read as no verdict; any other failure is not
  stored, so a rerun retries it, and the run ends with status 1 without a summary;
* ``summary.json``: settings, counts (pairs, judgements, parse failures, failed judgements, texts with lone
  surrogates replaced) and the benchmark scores, written atomically;
* ``summary.md``: the scores as a markdown table, with a PARTIAL note when subsets, sections, domains or parts of the
  benchmark are missing (the same text is printed); with ``--k``, ``scaling.png``: the score against k.

Presentation order: every judgement shows the chosen reply as A or B by a coin seeded with
(``--seed``, pair id, sample index), or ``--both-orders`` judges each pair both ways and reports ``both`` (a pair is
right only if both orders are) and ``mean`` (the mean of the two). Verdicts are re-read from the stored responses at
scoring time with ``--verdict-rule``, so a finished run can be re-scored under another rule without new generations.

Voting@k (``--k 1,2,4,8``): max(k) samples per pair at ``--temperature`` (default 0.5), each in its own seeded
order; voting@k uses the first k samples (``rm_r1.evaluation.scaling.voting``, or score sums in pointwise mode). With
``--meta-rm``, a meta scorer rates every judgement (``meta_judgements.jsonl``, resumable the same way) and ``meta@k``
votes over the best-rated half of the first k samples, reported beside voting@k.

Best-of-N (``--benchmark rmb --bon-strategy pairwise,knockout,elo,pointwise``): RMB's best-of-N sets scored by each
strategy (``rm_r1.evaluation.best_of_n``), with accuracy and judge calls per record in ``summary.json`` under
``best_of_n``; tournament answers are kept in ``bon_judgements.jsonl`` and reused by a rerun.

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

from harness.generation import BACKENDS, OFFICIAL_MAX_NEW_TOKENS, BackendError, GenerationBackend, Sampling
from rm_r1.evaluation.benchmarks import BENCHMARKS, Comparison, load_benchmark, replace_surrogates_in_pairs
from rm_r1.evaluation.best_of_n import BON_FILE, BON_STRATEGIES, Asker, BestOfN, bon_sets, pairwise_tally
from rm_r1.evaluation.meta_rm import ClassifierMeta, GenerativeMeta, MetaScorer
from rm_r1.evaluation.modes import MODES, make_mode
from rm_r1.evaluation.plan import limit_records, plan_jobs
from rm_r1.evaluation.report import write_reports
from rm_r1.evaluation.run import run_judge, run_meta
from rm_r1.evaluation.scaling import ELO_METHODS, FAILURE_RULES, TIE_RULES
from rm_r1.evaluation.score import check_scorable, score_judgements
from rm_r1.evaluation.store import META_FILE, META_SETTINGS_FILE, RESULTS_FILE, check_settings, read_judgements
from rm_r1.judge.prompts import FAMILIES, LAYOUTS
from rm_r1.judge.verdicts import EVALUATION_VERDICT_RULE, UNPARSABLE_CREDIT, VERDICT_RULES

META_BACKENDS = (*BACKENDS, "classifier")

log = logging.getLogger("rm_r1.evaluate")


def _ks(text: str) -> list[int]:
    try:
        ks = sorted({int(part) for part in text.split(",")})
    except ValueError:
        raise argparse.ArgumentTypeError(f"--k takes comma-separated integers such as 1,2,4,8, got {text!r}") from None
    if ks[0] < 1:
        raise argparse.ArgumentTypeError(f"every k must be >= 1, got {text!r}")
    return ks


def _strategies(text: str) -> list[str]:
    names = list(dict.fromkeys(part.strip() for part in text.split(",")))
    unknown = [name for name in names if name not in BON_STRATEGIES]
    if unknown:
        raise argparse.ArgumentTypeError(
            f"unknown best-of-N strategy {unknown}; choose from {', '.join(BON_STRATEGIES)}"
        )
    return names


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
    p.add_argument("--prompt-file", help="own pairwise judge instructions (see rm_r1.judge.prompts.load_prompt)")
    p.add_argument(
        "--prompt-layout",
        default="project",
        choices=LAYOUTS,
        help="the user turn's layout of the conversation and replies: this project's, or official (RM-R1's, which "
        "the published checkpoints were trained and evaluated on)",
    )
    p.add_argument(
        "--verdict-rule",
        default=EVALUATION_VERDICT_RULE,
        choices=VERDICT_RULES,
        help="default anywhere: RM-R1's eval rule; rewardbench: allenai's generative rule ([[A]] wins if present, "
        "no verdict counts 0.5); see rm_r1.judge.verdicts",
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
    p.add_argument(
        "--max-new-tokens",
        type=int,
        default=OFFICIAL_MAX_NEW_TOKENS,
        help=f"generation budget per judgement (default {OFFICIAL_MAX_NEW_TOKENS:,}, the official evaluation's for "
        "both families; a judgement cut by it, or by the model's context, is counted in truncated_judgements)",
    )
    p.add_argument("--tie", default="random", choices=TIE_RULES, help="pairwise voting ties: seeded coin, or wrong")
    p.add_argument("--failures", default="abstain", choices=FAILURE_RULES, help="unparsable samples in pairwise voting")
    p.add_argument("--limit", type=int, help="only the first N benchmark records (smoke runs)")
    meta = p.add_argument_group("meta-RM guided voting (with --k)")
    meta.add_argument(
        "--meta-rm",
        metavar="MODEL",
        help="a second scorer rates every sampled judgement; meta@k votes over the best-rated max(1, k//2) of the "
        "first k samples, reported beside voting@k",
    )
    meta.add_argument(
        "--meta-rm-backend",
        choices=META_BACKENDS,
        help="hf/openai/vllm: a generative judge asked whether the judgement is sound (a 1-10 rating in "
        "\\boxed{}); classifier: a transformers sequence-classification model (default: --backend)",
    )
    meta.add_argument("--meta-rm-base-url", help="the meta scorer's server for --meta-rm-backend openai "
                      "(default: --base-url)")  # fmt: skip
    bon = p.add_argument_group("best-of-N selection (RMB's best-of-N sets)")
    bon.add_argument(
        "--bon-strategy",
        type=_strategies,
        metavar="LIST",
        help="comma-separated, from pairwise (the best reply beats every loser), knockout (it wins a knockout "
        "tournament), elo (it has the top rating of a both-orders round robin), pointwise (it gets the strictly "
        "highest score when all replies are rated in one prompt); reports accuracy and judge calls per record",
    )
    bon.add_argument("--elo-method", default="averaged", choices=ELO_METHODS,
                     help="sequential ELO depends on the order of the games; averaged: mean over seeded orders; "
                     "bradley-terry: a fit that ignores order")  # fmt: skip
    bon.add_argument("--elo-permutations", type=int, default=32, help="game orders averaged by --elo-method averaged")
    bon.add_argument("--reasks", type=int, default=2,
                     help="times an unparsable tournament match (or pointwise rating) is asked again before a "
                     "seeded coin decides (counted)")  # fmt: skip
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


def make_backend(args: argparse.Namespace, backend: str | None = None, model: str | None = None,
                 base_url: str | None = None) -> GenerationBackend:  # fmt: skip
    """The judge backend of ``args`` (or ``backend``/``model``/``base_url`` instead of theirs, for the meta scorer)."""
    backend, model, base_url = backend or args.backend, model or args.model, base_url or args.base_url
    if backend == "hf":
        from harness.generation import TransformersBackend

        return TransformersBackend(model, batch_size=args.batch_size, device=args.device, dtype=args.dtype)
    if backend == "openai":
        from harness.generation import OpenAIBackend

        if not base_url:
            raise SystemExit("--backend openai needs --base-url (e.g. http://127.0.0.1:8000/v1)")
        return OpenAIBackend(
            base_url,
            model,
            api_key=os.environ.get(args.api_key_env),
            concurrency=args.concurrency,
            retries=args.retries,
            timeout=args.timeout,
            backoff=args.backoff,
        )
    from harness.generation import VLLMBackend

    return VLLMBackend(
        model,
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
        **({"prompt_layout": args.prompt_layout} if args.prompt_layout != "project" else {}),
        "seed": args.seed,
        "both_orders": args.both_orders,
        "sampling": dataclasses.asdict(sampling),
    }


def make_meta_scorer(args: argparse.Namespace, sampling: Sampling) -> MetaScorer:
    """The ``--meta-rm`` scorer: a classifier, or a generative judge decoding greedily with the judge's token limit."""
    backend = args.meta_rm_backend or args.backend
    if backend == "classifier":
        return ClassifierMeta(args.meta_rm, batch_size=args.batch_size, device=args.device, dtype=args.dtype)
    judge = make_backend(args, backend, args.meta_rm, args.meta_rm_base_url)
    return GenerativeMeta(judge, Sampling(max_new_tokens=sampling.max_new_tokens))


def best_of_n(
    args: argparse.Namespace,
    backend: GenerationBackend,
    sampling: Sampling,
    comparisons: Sequence[Comparison],
    scored: dict[str, Any],
) -> dict[str, Any]:
    """Per ``--bon-strategy``: accuracy on RMB's best-of-N sets (overall and per section), judge calls per record,
    re-asks, coin decisions and unparsable ratings."""
    sets = bon_sets(comparisons)
    if not sets:
        raise SystemExit("--bon-strategy: the RMB data holds no best-of-N sets (BoN_set files)")
    asker = Asker(backend, sampling, args.output_dir / BON_FILE, args.seed)
    runner = BestOfN(
        asker, family=args.prompt_family, prompt_file=args.prompt_file, verdict_rule=args.verdict_rule, seed=args.seed,
        reasks=args.reasks, elo_method=args.elo_method, permutations=args.elo_permutations,
    )  # fmt: skip
    out = {}
    for strategy in args.bon_strategy:
        if strategy == "pairwise":  # the run's own pair judgements: greedy, both orders, or the smallest k
            label, first = next(iter(scored["results"].items()))
            per_pair = int(label.split("@")[1]) if "@" in label else 2 if args.both_orders else 1
            out[strategy] = {"from": label, **pairwise_tally(sets, first["scores"], per_pair)}
        else:
            out[strategy] = getattr(runner, strategy)(sets).summary()
    log.info("best-of-N: %d new judge calls (the rest reused from %s)", asker.new_calls, BON_FILE)
    return out


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
    if args.meta_rm and not args.k:
        raise SystemExit("--meta-rm needs --k: meta-RM guided voting chooses among k sampled judgements")
    if args.bon_strategy and args.benchmark != "rmb":
        raise SystemExit("--bon-strategy scores RMB's best-of-N sets: it needs --benchmark rmb")
    if args.prompt_layout != "project" and set(args.bon_strategy or ()) & {"knockout", "elo"}:
        raise SystemExit("--prompt-layout official is not applied to the knockout and elo tournaments yet")
    if args.reasks < 0 or args.elo_permutations < 1:
        raise SystemExit(
            f"--reasks must be >= 0 and --elo-permutations >= 1, got {args.reasks}, {args.elo_permutations}"
        )
    try:
        mode = make_mode(
            args.mode,
            args.prompt_family,
            prompt_file=args.prompt_file,
            verdict_rule=args.verdict_rule,
            tie=args.tie,
            failures=args.failures,
            layout=args.prompt_layout,
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
    backend = make_backend(args)
    failed = run_judge(
        backend, mode, comparisons, jobs, sampling, results_path, verdict_rule=args.verdict_rule, seed=args.seed
    )
    if failed:
        log.error(
            "%d judgements failed in the backend and were not stored; rerun the same command to retry them", failed
        )
        return 1
    wanted = {(job.pair_id, job.sample) for job in jobs}
    judgements = {key: record for key, record in read_judgements(results_path).items() if key in wanted}
    meta = None
    if args.meta_rm:
        meta_settings = {"meta_rm": args.meta_rm, "meta_rm_backend": args.meta_rm_backend or args.backend}
        check_settings(args.output_dir, meta_settings, META_SETTINGS_FILE)
        meta_path = args.output_dir / META_FILE
        if run_meta(make_meta_scorer(args, sampling), mode, comparisons, judgements, meta_path, seed=args.seed):
            log.error("some meta scores failed in the backend and were not stored; rerun the same command")
            return 1
        meta = {key: record["meta_score"] for key, record in read_judgements(meta_path).items() if key in wanted}
    scored = score_judgements(
        args.benchmark, comparisons, judgements, mode, seed=args.seed, ks=args.k, both_orders=args.both_orders,
        meta=meta,
        allow_partial=args.allow_partial,
        unparsable_credit=UNPARSABLE_CREDIT.get(args.verdict_rule, 0.0) if args.mode == "pairwise" else 0.0,
    )  # fmt: skip
    if args.bon_strategy:
        try:
            scored["best_of_n"] = best_of_n(args, backend, sampling, comparisons, scored)
        except BackendError as error:
            log.error("%s", error)
            return 1
    summary = {
        "settings": {
            **settings,
            "verdict_rule": args.verdict_rule,
            "allow_partial": args.allow_partial,
            "k": args.k,
            "tie": args.tie,
            "failures": args.failures,
            "meta_rm": args.meta_rm,
            "bon_strategy": args.bon_strategy,
            "elo_method": args.elo_method,
            "reasks": args.reasks,
        },
        "pairs": len(comparisons),
        "judgements": len(wanted),
        "truncated_judgements": sum(record.get("truncated") is True for record in judgements.values()),
        "truncation_unknown": sum(
            "truncated" not in record and record["response"] is not None for record in judgements.values()
        ),
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
