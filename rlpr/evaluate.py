"""Benchmark evaluation outside training: ``python -m rlpr.evaluate --model PATH --data FILE.parquet [...]``.

Generates k responses per row of each verl-format file, k read from the file's name (``<name>_Avg<k>``, any case; 1
without that suffix) as the paper's trainer does (``--one-sample-per-row``: every row once, for files that already
repeat each question k times; a ``_Avg<k>`` file whose rows repeat a question is refused otherwise), grades each
exactly as training validation does (``rlpr.evaluation.validation.grade_response``,
with the optional LLM judge), and writes to ``--output-dir``:

* ``samples.jsonl``: one line per sample (sample position, data source, question id and index, sample number,
  reference, response,
  extracted prediction, acc, format, has_answer, judge_used, judge_failed), appended and synced to disk after every
  generation batch;
* ``settings.json``: what the samples depend on (model, data files, sampling, format, judge);
* ``summary.json`` (the ``avg_at_k_metrics`` metrics and counts) and ``summary.md`` (the table, also printed), each
  written whole to a temporary file and renamed.

Resume: rerunning the same command skips the rows already in ``samples.jsonl`` (a torn last line from a kill is
dropped and redone) and generates the rest; other settings in the same folder are refused. The output folder is
checked before any model is loaded.

Generation: the shared backends of ``harness.generation``, vLLM on GPU (imported only when used), transformers
``generate`` otherwise (``--backend``). Rows go to the backend in fixed batches (``--batch-size`` rows for hf,
``VLLM_CHUNK`` for vLLM), seeded by (``--seed``, the row; hf: the batch's first row), so a resumed run samples what
an uninterrupted one would.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from harness.files import repair_jsonl_tail, write_text_atomically
from harness.generation import GenerationRequest, Sampling, request_seed
from harness.rows import read_rows
from rlpr.answer import FORMAT_MODES
from rlpr.evaluation.benchmarks import BENCHMARKS, DOMAINS, avg_at_k_metrics, find_benchmark
from rlpr.evaluation.judge import VERDICT_RULES, LLMJudge
from rlpr.evaluation.validation import (
    Grade,
    grade_response,
    judge_from_kwargs,
    key_from_environment,
)

logger = logging.getLogger(__name__)

BACKENDS = ("auto", "vllm", "hf")
METRIC_PREFIX = "eval"
SAMPLES_FILE, SETTINGS_FILE, SUMMARY_FILE, TABLE_FILE = "samples.jsonl", "settings.json", "summary.json", "summary.md"
VLLM_CHUNK = 512  # rows per vLLM call: each chunk is stored before the next starts


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


def load_eval_files(paths: Sequence[str | Path]) -> list[list[dict[str, Any]]]:
    """The rows of each verl-format file, checked for the fields evaluation needs (the bad row is named)."""
    files: list[list[dict[str, Any]]] = []
    for path in paths:
        rows = []
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
        files.append(rows)
    if not any(files):
        raise ValueError(f"no rows in {list(map(str, paths))}")
    return files


def load_eval_rows(paths: Sequence[str | Path]) -> list[dict[str, Any]]:
    """The rows of all the files, in order (``load_eval_files``)."""
    return [row for rows in load_eval_files(paths) for row in rows]


def expand_samples(
    paths: Sequence[str | Path], files: Sequence[Sequence[dict[str, Any]]], from_file_name: bool = True
) -> list[dict[str, Any]]:
    """The samples to generate: each row of ``files`` (the rows of each of ``paths``) k times in a row, k from its
    file's name (``rlpr.training.val_samples.samples_per_row``) when ``from_file_name``, else once. Each sample is
    the row with ``extra_info.sample`` set and ``question_id`` (the same for every copy of one question)."""
    from rlpr.training.val_samples import check_not_repeated, question_id, samples_per_row

    samples = []
    for path, rows in zip(paths, files, strict=True):
        ids = [question_id(r["data_source"], r["prompt"], r["reward_model"]["ground_truth"]) for r in rows]
        k = samples_per_row(path) if from_file_name else 1
        check_not_repeated(path, ids, k)
        samples += [
            {**row, "extra_info": {**(row.get("extra_info") or {}), "sample": s}, "question_id": qid}
            for row, qid in zip(rows, ids, strict=True)
            for s in range(k)
        ]
    return samples


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
                "question": row.get("question_id"),
                "index": extra.get("index"),
                "sample": extra.get("sample"),
                "reference": row["reward_model"]["ground_truth"],
                "response": response,
                **asdict(grade),
                "has_answer": grade.reward_dict()["has_answer"],
            }
        )
    return records


def missing_benchmarks(sources: Iterable[str]) -> dict[str, list[str]]:
    """For each average that ``avg_at_k_metrics`` reports (general, math, overall), the paper's benchmarks it lacks
    (an empty list when it is complete). Sources are recognised in either naming (``find_benchmark``)."""
    present = {bench.name for bench in map(find_benchmark, sources) if bench is not None}
    missing: dict[str, list[str]] = {}
    for group in (*DOMAINS, "overall"):
        members = [b.name for b in BENCHMARKS.values() if group in (b.domain, "overall")]
        if any(name in present for name in members):
            missing[group] = [name for name in members if name not in present]
    return missing


def summarize(records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Avg@k metrics (prefix ``eval``), per-source sample counts, judge counts, and the paper benchmarks each
    reported average lacks (``missing_benchmarks``)."""
    ids = [r.get("question") for r in records]
    metrics = avg_at_k_metrics(
        [r["data_source"] for r in records],
        [r["acc"] for r in records],
        METRIC_PREFIX,
        question_ids=ids if all(q is not None for q in ids) else None,
    )
    samples = dict(Counter(r["data_source"] for r in records))
    return {
        "metrics": metrics,
        "samples": samples,
        "missing_benchmarks": missing_benchmarks(samples),
        "judge_used": int(sum(r["judge_used"] for r in records)),
        "judge_failed": int(sum(r["judge_failed"] for r in records)),
        "no_answer": int(sum(1 - r["has_answer"] for r in records)),
    }


def summary_table(summary: Mapping[str, Any]) -> str:
    """A markdown table: Avg@k (%) per data source, then the general/math/overall averages; an average over fewer
    benchmarks than the paper's says so in its row and in a note below the table."""
    metrics, samples, missing = summary["metrics"], summary["samples"], summary["missing_benchmarks"]
    lines = ["| data source | k | samples | Avg@k (%) |", "|---|---|---|---|"]
    for source in sorted(samples):
        bench = find_benchmark(source)
        key = f"{METRIC_PREFIX}/{source}/acc"
        if bench is not None:
            key = next(m for m in metrics if m.startswith(f"{METRIC_PREFIX}/{bench.name}/avg@"))
        k = key.rsplit("@", 1)[1] if bench is not None else "-"
        lines.append(f"| {source} | {k} | {samples[source]} | {100 * metrics[key]:.1f} |")
    notes = []
    for group, lacking in missing.items():
        label = f"**{group} average**"
        if lacking:
            total = sum(group in (b.domain, "overall") for b in BENCHMARKS.values())
            label += f" (PARTIAL: {total - len(lacking)} of {total})"
            notes.append(
                f"PARTIAL: the {group} average covers {total - len(lacking)} of the paper's {total} benchmarks "
                f"(missing: {', '.join(lacking)}); it is not comparable with the paper's."
            )
        lines.append(f"| {label} | | | {100 * metrics[f'{METRIC_PREFIX}/{group}/avg']:.1f} |")
    lines.append("")
    lines += notes
    lines.append(
        f"No answer: {summary['no_answer']} samples; judge used: {summary['judge_used']}, "
        f"judge failed: {summary['judge_failed']}."
    )
    return "\n".join(lines) + "\n"


def write_summary(output_dir: str | Path, records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Write summary.json and summary.md (each atomically) for ``records``; return the summary."""
    out = Path(output_dir)
    summary = summarize(records)
    write_text_atomically(out / SUMMARY_FILE, json.dumps(summary, indent=2) + "\n")
    write_text_atomically(out / TABLE_FILE, summary_table(summary))
    return summary


def prepare_output_dir(output_dir: str | Path, settings: Mapping[str, Any]) -> Path:
    """Create the output folder and check, before any model is loaded, that it can be written and holds no samples
    made with other ``settings`` (stored in settings.json on the first run)."""
    out = Path(output_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
        path = out / SETTINGS_FILE
        if path.exists():
            stored = json.loads(path.read_text(encoding="utf-8"))
            changed = sorted(k for k in set(stored) | set(settings) if stored.get(k) != settings.get(k))
            if changed:
                details = ", ".join(f"{k}: {stored.get(k)!r} -> {settings.get(k)!r}" for k in changed)
                raise ValueError(f"{out} holds samples made with other settings ({details}); use another --output-dir")
        else:
            write_text_atomically(path, json.dumps(settings, indent=2) + "\n")
        with (out / SAMPLES_FILE).open("a", encoding="utf-8"):
            pass
    except OSError as error:
        raise ValueError(f"output folder {str(out)!r} cannot be written: {error}") from error
    return out


def read_samples(path: Path, rows: Sequence[Mapping[str, Any]]) -> dict[int, dict[str, Any]]:
    """The stored sample records by row position, after cutting a torn last line. A line that is not a record, a
    row stored twice, or a record that does not match its data row is an error naming the line."""
    repair_jsonl_tail(path, "its row will be generated again")
    done: dict[int, dict[str, Any]] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        where = f"{path}:{number}"
        try:
            record = json.loads(line)
            row = record["row"]
            source, reference = record["data_source"], record["reference"]
        except (ValueError, KeyError, TypeError) as error:
            raise ValueError(f"{where}: not a sample record ({error})") from error
        if not isinstance(row, int) or row < 0:
            raise ValueError(f"{where}: 'row' must be a row position (int >= 0), got {row!r}")
        if row in done:
            raise ValueError(f"{where}: row {row} is stored twice")
        expected = (rows[row]["data_source"], rows[row]["reward_model"]["ground_truth"]) if row < len(rows) else None
        if expected is not None and (source, reference) != expected:
            raise ValueError(
                f"{where}: row {row} holds {source!r} / {reference!r}, which is not that row of --data; "
                "the data files changed: use another --output-dir"
            )
        done[row] = record
    return done


def resolve_backend(backend: str) -> str:
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; expected one of {BACKENDS}")
    if backend != "auto":
        return backend
    import torch

    return "vllm" if torch.cuda.is_available() else "hf"


def make_generator(
    model_path: str, backend: str, sampling: SamplingSettings, tensor_parallel_size: int, batch_size: int = 8
) -> Callable[[Sequence[Mapping[str, Any]], Sequence[int]], list[str]]:
    """A function (rows, their positions) -> one response per row, from the shared generation backends
    (``harness.generation``: ``TransformersBackend`` for hf, in batches of ``batch_size`` rows, ``VLLMBackend`` for
    vllm). Row ``i`` is sampled with the seed ``request_seed(seed, i)`` (hf: the seed of the batch starting at it), so
    the result does not depend on what ran before. hf stops where the model's generation config says, as transformers
    does by default."""
    from harness.generation import TransformersBackend, VLLMBackend

    if backend == "vllm":
        engine = VLLMBackend(
            model_path, tensor_parallel_size=tensor_parallel_size, chunk_size=VLLM_CHUNK, seed=sampling.seed
        )
    else:
        engine = TransformersBackend(model_path, batch_size=batch_size, eos="model")
    budget = Sampling(temperature=sampling.temperature, top_p=sampling.top_p, max_new_tokens=sampling.max_new_tokens)

    def generate(rows: Sequence[Mapping[str, Any]], positions: Sequence[int]) -> list[str]:
        requests = [
            GenerationRequest(list(row["prompt"]), seed=request_seed(sampling.seed, i))
            for row, i in zip(rows, positions, strict=True)
        ]
        texts: list[str | None] = [None] * len(requests)
        for completion in engine.generate(requests, budget):
            texts[completion.index] = completion.text
        return texts  # type: ignore[return-value]  # local backends answer every request

    return generate


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
    samples_from_file_name: bool = True,
) -> dict[str, Any]:
    """Generate and grade every sample not yet in ``samples.jsonl``, appending each batch as it is done, then write
    the summary of all samples (see the module docstring) and return it. ``limit`` keeps the first rows of the data
    (before they are sampled k times)."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    files, left = [], limit
    for rows_of_file in load_eval_files(data):
        files.append(rows_of_file if left is None else rows_of_file[: max(left, 0)])
        left = None if left is None else left - len(files[-1])
    rows = expand_samples(data, files, samples_from_file_name)
    settings = {
        "model": model_path,
        "data": [str(p) for p in data],
        "sampling": asdict(sampling),
        "format": format_mode,
        "samples_per_row": "file name" if samples_from_file_name else 1,
        "judge": None if judge is None else judge_settings(judge),
    }
    out = prepare_output_dir(output_dir, settings)
    samples_path = out / SAMPLES_FILE
    done = read_samples(samples_path, rows)
    backend = resolve_backend(backend)
    step = VLLM_CHUNK if backend == "vllm" else batch_size
    batches = [range(s, min(s + step, len(rows))) for s in range(0, len(rows), step)]
    todo = [batch for batch in batches if any(i not in done for i in batch)]
    stored = sum(i in done for i in range(len(rows)))
    logger.info(
        "%d of %d rows stored in %s; generating %d batches with %s", stored, len(rows), samples_path, len(todo), backend
    )
    if todo:
        from tqdm import tqdm

        generate = make_generator(model_path, backend, sampling, tensor_parallel_size, batch_size)
        with samples_path.open("a", encoding="utf-8") as f:
            for batch in tqdm(todo, unit="batch", desc="generating", dynamic_ncols=True):
                batch_rows = [rows[i] for i in batch]
                responses = generate(batch_rows, batch)
                grades = asyncio.run(grade_all(batch_rows, responses, format_mode=format_mode, judge=judge))
                for i, record in zip(batch, sample_records(batch_rows, responses, grades), strict=True):
                    if i not in done:  # a batch cut short by a kill is generated again whole; keep the stored rows
                        done[i] = {"row": i, **record}
                        f.write(json.dumps(done[i], ensure_ascii=False) + "\n")
                f.flush()
                os.fsync(f.fileno())
    return write_summary(out, [done[i] for i in range(len(rows))])


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m rlpr.evaluate", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
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
    p.add_argument(
        "--one-sample-per-row",
        action="store_true",
        help="generate every row once, whatever the file's _Avg<k> name (files that repeat each question k times)",
    )
    p.add_argument("--judge-base-url", help="OpenAI-compatible API root, e.g. http://host:8000/v1")
    p.add_argument("--judge-model")
    p.add_argument("--judge-api-key-env", help="name of the environment variable holding the judge's API key")
    p.add_argument("--judge-concurrency", type=int, default=16)
    p.add_argument("--judge-timeout", type=float, default=60.0)
    p.add_argument("--judge-retries", type=int, default=2)
    p.add_argument(
        "--judge-verdict-rule",
        default="official",
        choices=VERDICT_RULES,
        help="how the judge's boxed verdict is read: official (last single-letter box) or lenient",
    )
    return p.parse_args(argv)


def judge_settings(judge: LLMJudge) -> dict[str, Any]:
    """What of the judge the stored samples depend on (part of settings.json)."""
    cfg = judge.config
    return {"base_url": cfg.base_url, "model": cfg.model, "protocol": cfg.protocol, "verdict_rule": cfg.verdict_rule}


def judge_from_args(args: argparse.Namespace) -> LLMJudge | None:
    """The judge the ``--judge-*`` options ask for (None without ``--judge-base-url``)."""
    try:
        api_key = key_from_environment(args.judge_api_key_env, "--judge-api-key-env")
    except ValueError as err:
        raise SystemExit(f"python -m rlpr.evaluate: {err}") from None
    return judge_from_kwargs(
        judge_base_url=args.judge_base_url,
        judge_model=args.judge_model,
        judge_api_key=api_key,
        judge_concurrency=args.judge_concurrency,
        judge_timeout=args.judge_timeout,
        judge_retries=args.judge_retries,
        judge_verdict_rule=args.judge_verdict_rule,
    )


def main(argv: Sequence[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = parse_args(argv)
    judge = judge_from_args(args)
    sampling = SamplingSettings(args.temperature, args.top_p, args.max_new_tokens, args.seed)
    summary = evaluate(
        args.model,
        args.data,
        args.output_dir,
        sampling=sampling,
        backend=args.backend,
        format_mode=args.format,
        judge=judge,
        batch_size=args.batch_size,
        tensor_parallel_size=args.tensor_parallel_size,
        limit=args.limit,
        samples_from_file_name=not args.one_sample_per_row,
    )
    print(summary_table(summary), end="")


if __name__ == "__main__":
    main()
