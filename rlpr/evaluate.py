"""Benchmark evaluation outside training: ``python -m rlpr.evaluate --model PATH --data FILE.parquet [...]``.

Generates one response per row of each verl-format file (the files repeat each question k times, so one sample per
row gives Avg@k), grades it exactly as training validation does (``rlpr.validation.grade_response``, with the optional
LLM judge), and writes to ``--output-dir``:

* ``samples.jsonl``: one line per row (data source, question index, sample, reference, response, extracted
  prediction, acc, format, has_answer, judge_used, judge_failed);
* ``summary.json`` (the ``avg_at_k_metrics`` metrics and counts) and ``summary.md`` (the table, also printed).

Generation: vLLM on GPU (imported only when used), transformers ``generate`` otherwise (``--backend``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from rlpr.answer import FORMAT_MODES
from rlpr.data_checks import read_rows
from rlpr.judge import LLMJudge
from rlpr.validation import BENCHMARKS, DOMAINS, Grade, avg_at_k_metrics, grade_response, judge_from_kwargs

logger = logging.getLogger(__name__)

BACKENDS = ("auto", "vllm", "hf")
METRIC_PREFIX = "eval"


@dataclass(frozen=True)
class SamplingSettings:
    """How responses are sampled (the paper: temperature 1.0 for Qwen, 0.6 and top_p 0.95 for Llama/Gemma)."""

    temperature: float = 1.0
    top_p: float = 1.0
    max_new_tokens: int = 3072
    seed: int = 0

    def __post_init__(self) -> None:
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be positive, got {self.max_new_tokens}")


def load_eval_rows(paths: Sequence[str | Path]) -> list[dict[str, Any]]:
    """The rows of the verl-format files, checked for the fields evaluation needs (the bad row is named)."""
    rows: list[dict[str, Any]] = []
    for path in paths:
        for i, row in enumerate(read_rows(path)):
            where = f"{path} row {i}"
            if not isinstance(row.get("data_source"), str) or not row["data_source"]:
                raise ValueError(f"{where}: data_source must be a non-empty str")
            prompt = row.get("prompt")
            if not isinstance(prompt, list) or not prompt or not all(isinstance(m, Mapping) for m in prompt):
                raise ValueError(f"{where}: prompt must be a non-empty list of chat messages")
            truth = (row.get("reward_model") or {}).get("ground_truth")
            if not isinstance(truth, str) or not truth.strip():
                raise ValueError(f"{where}: reward_model.ground_truth must be a non-empty str")
            rows.append(row)
    if not rows:
        raise ValueError(f"no rows in {list(map(str, paths))}")
    return rows


def render_prompts(tokenizer: Any, rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """Each row's chat messages through the model's chat template, ending with the assistant's turn."""
    return [
        tokenizer.apply_chat_template(list(row["prompt"]), tokenize=False, add_generation_prompt=True) for row in rows
    ]


def generate_hf(
    model: Any, tokenizer: Any, prompts: Sequence[str], sampling: SamplingSettings, batch_size: int = 8
) -> list[str]:
    """Responses from transformers ``generate`` (sampling when temperature > 0, greedy at 0), in batches."""
    import torch

    from rlpr.rollout import pad_token_id

    torch.manual_seed(sampling.seed)
    pad_id = pad_token_id(tokenizer)
    side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    sample = sampling.temperature > 0
    options = {"do_sample": True, "temperature": sampling.temperature, "top_p": sampling.top_p} if sample else {
        "do_sample": False
    }
    device = next(model.parameters()).device
    responses: list[str] = []
    try:
        for start in range(0, len(prompts), batch_size):
            batch = tokenizer(list(prompts[start : start + batch_size]), return_tensors="pt", padding=True,
                              add_special_tokens=False).to(device)
            with torch.no_grad():
                out = model.generate(**batch, max_new_tokens=sampling.max_new_tokens, pad_token_id=pad_id, **options)
            new = out[:, batch["input_ids"].shape[1] :]
            responses += tokenizer.batch_decode(new, skip_special_tokens=True)
    finally:
        tokenizer.padding_side = side
    return responses


def generate_vllm(
    model_path: str, prompt_ids: Sequence[Sequence[int]], sampling: SamplingSettings, tensor_parallel_size: int = 1
) -> list[str]:
    """Responses from vLLM (one sample per prompt, in input order), from token ids so no second BOS is added."""
    from vllm import LLM, SamplingParams

    llm = LLM(model=model_path, tensor_parallel_size=tensor_parallel_size, seed=sampling.seed)
    params = SamplingParams(
        temperature=sampling.temperature, top_p=sampling.top_p, max_tokens=sampling.max_new_tokens, n=1
    )
    outputs = llm.generate([{"prompt_token_ids": list(ids)} for ids in prompt_ids], params)
    return [out.outputs[0].text for out in outputs]


async def grade_all(
    rows: Sequence[Mapping[str, Any]], responses: Sequence[str], *, format_mode: str, judge: LLMJudge | None
) -> list[Grade]:
    """``grade_response`` for every (row, response), concurrently (the judge bounds its own concurrency)."""
    if len(rows) != len(responses):
        raise ValueError(f"{len(rows)} rows but {len(responses)} responses")
    return list(
        await asyncio.gather(
            *(
                grade_response(
                    row["data_source"],
                    response,
                    row["reward_model"]["ground_truth"],
                    row.get("extra_info"),
                    format_mode=format_mode,
                    judge=judge,
                )
                for row, response in zip(rows, responses, strict=True)
            )
        )
    )


def sample_records(
    rows: Sequence[Mapping[str, Any]], responses: Sequence[str], grades: Sequence[Grade]
) -> list[dict[str, Any]]:
    """The per-sample lines of ``samples.jsonl``."""
    records = []
    for row, response, grade in zip(rows, responses, grades, strict=True):
        extra = row.get("extra_info") or {}
        records.append(
            {
                "data_source": row["data_source"],
                "index": extra.get("index"),
                "sample": extra.get("sample"),
                "reference": row["reward_model"]["ground_truth"],
                "response": response,
                **asdict(grade),
                "has_answer": grade.reward_dict()["has_answer"],
            }
        )
    return records


def summarize(records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Avg@k metrics (prefix ``eval``) plus per-source sample counts and judge counts."""
    metrics = avg_at_k_metrics([r["data_source"] for r in records], [r["acc"] for r in records], METRIC_PREFIX)
    return {
        "metrics": metrics,
        "samples": dict(Counter(r["data_source"] for r in records)),
        "judge_used": int(sum(r["judge_used"] for r in records)),
        "judge_failed": int(sum(r["judge_failed"] for r in records)),
        "no_answer": int(sum(1 - r["has_answer"] for r in records)),
    }


def summary_table(summary: Mapping[str, Any]) -> str:
    """A markdown table: Avg@k (%) per data source, then the general/math/overall averages."""
    metrics, samples = summary["metrics"], summary["samples"]
    lines = ["| data source | k | samples | Avg@k (%) |", "|---|---|---|---|"]
    for source in sorted(samples):
        bench = BENCHMARKS.get(source)
        key = f"{METRIC_PREFIX}/{source}/" + (f"avg@{bench.k}" if bench else "acc")
        lines.append(f"| {source} | {bench.k if bench else '-'} | {samples[source]} | {100 * metrics[key]:.1f} |")
    for group in (*DOMAINS, "overall"):
        key = f"{METRIC_PREFIX}/{group}/avg"
        if key in metrics:
            lines.append(f"| **{group} average** | | | {100 * metrics[key]:.1f} |")
    lines.append("")
    lines.append(
        f"No answer: {summary['no_answer']} samples; judge used: {summary['judge_used']}, "
        f"judge failed: {summary['judge_failed']}."
    )
    return "\n".join(lines) + "\n"


def write_outputs(output_dir: str | Path, records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Write samples.jsonl, summary.json and summary.md; return the summary."""
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    with (out / "samples.jsonl").open("w") as f:
        for record in records:
            f.write(json.dumps(record, ensure_ascii=False) + "\n")
    summary = summarize(records)
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    (out / "summary.md").write_text(summary_table(summary))
    return summary


def resolve_backend(backend: str) -> str:
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; expected one of {BACKENDS}")
    if backend != "auto":
        return backend
    import torch

    return "vllm" if torch.cuda.is_available() else "hf"


def evaluate(
    model_path: str,
    data: Sequence[str | Path],
    output_dir: str | Path,
    *,
    sampling: SamplingSettings = SamplingSettings(),
    backend: str = "auto",
    format_mode: str = "R1",
    judge: LLMJudge | None = None,
    batch_size: int = 8,
    tensor_parallel_size: int = 1,
    limit: int | None = None,
) -> dict[str, Any]:
    """Generate, grade, write the outputs (see the module docstring) and return the summary."""
    from transformers import AutoTokenizer

    rows = load_eval_rows(data)[:limit]
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    prompts = render_prompts(tokenizer, rows)
    backend = resolve_backend(backend)
    logger.info("generating %d responses with %s", len(prompts), backend)
    if backend == "vllm":
        prompt_ids = [tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts]
        responses = generate_vllm(model_path, prompt_ids, sampling, tensor_parallel_size)
    else:
        from transformers import AutoModelForCausalLM

        model = AutoModelForCausalLM.from_pretrained(model_path, dtype="auto")
        model.eval()
        responses = generate_hf(model, tokenizer, prompts, sampling, batch_size)
    grades = asyncio.run(grade_all(rows, responses, format_mode=format_mode, judge=judge))
    return write_outputs(output_dir, sample_records(rows, responses, grades))


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m rlpr.evaluate", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="model directory or hub name")
    p.add_argument("--data", required=True, nargs="+", help="verl-format .parquet/.jsonl files (k rows per question)")
    p.add_argument("--output-dir", default="eval_out")
    p.add_argument("--backend", default="auto", choices=BACKENDS, help="auto: vllm with CUDA, else hf")
    p.add_argument("--format", default="R1", choices=FORMAT_MODES, help="format mode for the 'format' column")
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--top-p", type=float, default=1.0)
    p.add_argument("--max-new-tokens", type=int, default=3072)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-size", type=int, default=8, help="hf backend batch size")
    p.add_argument("--tensor-parallel-size", type=int, default=1, help="vllm backend")
    p.add_argument("--limit", type=int, help="only the first N rows (smoke runs)")
    p.add_argument("--judge-base-url", help="OpenAI-compatible API root, e.g. http://host:8000/v1")
    p.add_argument("--judge-model")
    p.add_argument("--judge-api-key-env", help="name of the environment variable holding the judge's API key")
    p.add_argument("--judge-concurrency", type=int, default=16)
    p.add_argument("--judge-timeout", type=float, default=60.0)
    p.add_argument("--judge-retries", type=int, default=2)
    return p.parse_args(argv)


def judge_from_args(args: argparse.Namespace) -> LLMJudge | None:
    """The judge the ``--judge-*`` options ask for (None without ``--judge-base-url``)."""
    api_key = None
    if args.judge_api_key_env:
        api_key = os.environ.get(args.judge_api_key_env)
        if not api_key:
            raise SystemExit(f"environment variable {args.judge_api_key_env} (--judge-api-key-env) is not set")
    return judge_from_kwargs(
        judge_base_url=args.judge_base_url,
        judge_model=args.judge_model,
        judge_api_key=api_key,
        judge_concurrency=args.judge_concurrency,
        judge_timeout=args.judge_timeout,
        judge_retries=args.judge_retries,
    )


def main(argv: Sequence[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = parse_args(argv)
    judge = judge_from_args(args)
    sampling = SamplingSettings(args.temperature, args.top_p, args.max_new_tokens, args.seed)
    summary = evaluate(args.model, args.data, args.output_dir, sampling=sampling, backend=args.backend,
                       format_mode=args.format, judge=judge, batch_size=args.batch_size,
                       tensor_parallel_size=args.tensor_parallel_size, limit=args.limit)
    print(summary_table(summary), end="")


if __name__ == "__main__":
    main()
