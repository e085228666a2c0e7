"""``python -m rlpr.evaluate``: grading and summaries on fixed responses; the CPU path with the tiny model."""

from __future__ import annotations

import asyncio
import hashlib
import json
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from harness.rows import write_rows
from rlpr.data.prep import load_source, prepare_rows
from rlpr.evaluate import (
    SamplingSettings,
    evaluate,
    grade_all,
    judge_from_args,
    load_eval_rows,
    main,
    make_generator,
    parse_args,
    sample_records,
    write_summary,
)

DATA = Path(__file__).parent / "data"


def _rows(repeat=2):
    """2 MATH-500 and 2 MMLU-Pro questions, each written ``repeat`` times (rows already repeated k = 2 times)."""
    math, _ = prepare_rows("MATH-500", load_source(str(DATA / "math500.jsonl")), repeat=repeat)
    mc, _ = prepare_rows("MMLU-Pro", load_source(str(DATA / "mmlu_pro.jsonl")), repeat=repeat)
    return math + mc


def test_fixed_responses_give_the_expected_avg_at_k(tmp_path):
    rows = _rows()
    # MATH-500: q0 (3/4) right once of 2, q1 (3) right twice -> 3/4. MMLU-Pro: q0 (A) wrong twice, q1 (C) right once.
    responses = [
        "<think>a</think> <answer>\\boxed{0.75}</answer>",
        "<think>a</think> <answer>1</answer>",
        "<answer>3</answer>",
        "<think>b</think> <answer>x = 3</answer>",
        "<think>c</think> <answer>B</answer>",
        "no answer at all",
        "<think>d</think> <answer>The answer is (C)</answer>",
        "<think>d</think> <answer>D</answer>",
    ]
    grades = asyncio.run(grade_all(rows, responses, format_mode="R1", judge=None))
    assert [g.acc for g in grades] == [1, 0, 1, 1, 0, 0, 1, 0]
    records = sample_records(rows, responses, grades)
    summary = write_summary(tmp_path, records)
    m = summary["metrics"]
    assert m["eval/MATH-500/avg@2"] == 0.75 and m["eval/MMLU-Pro/avg@2"] == 0.25
    assert m["eval/general/avg"] == 0.25 and m["eval/math/avg"] == 0.75 and m["eval/overall/avg"] == 0.5
    assert summary["samples"] == {"MATH-500": 4, "MMLU-Pro": 4} and summary["no_answer"] == 1

    assert records[3]["prediction"] == "x = 3" and records[3]["sample"] == 1
    assert records[2]["format"] == 0.0 and records[5]["has_answer"] == 0.0 and records[5]["prediction"] is None
    table = (tmp_path / "summary.md").read_text()
    assert "| MATH-500 | 2 | 4 | 75.0 |" in table and "| MMLU-Pro | 2 | 4 | 25.0 |" in table
    assert json.loads((tmp_path / "summary.json").read_text()) == summary


def test_averages_over_fewer_benchmarks_than_the_papers_are_flagged_in_the_table(tmp_path):
    rows = _rows()  # MATH-500 and MMLU-Pro only: 1 of 4 general, 1 of 3 math, 2 of 7 overall
    responses = ["<answer>1</answer>"] * len(rows)
    grades = asyncio.run(grade_all(rows, responses, format_mode="R1", judge=None))
    summary = write_summary(tmp_path, sample_records(rows, responses, grades))
    assert summary["missing_benchmarks"] == {
        "general": ["GPQA-diamond", "TheoremQA", "WebInstruct-verified"],
        "math": ["Minerva", "AIME2024"],
        "overall": ["GPQA-diamond", "TheoremQA", "WebInstruct-verified", "Minerva", "AIME2024"],
    }
    table = (tmp_path / "summary.md").read_text()
    assert "| **general average** (PARTIAL: 1 of 4) | | | 0.0 |" in table
    assert "| **overall average** (PARTIAL: 2 of 7) | | |" in table
    assert (
        "PARTIAL: the general average covers 1 of the paper's 4 benchmarks (missing: GPQA-diamond, TheoremQA, "
        "WebInstruct-verified)"
    ) in table


def test_files_in_the_papers_naming_report_under_the_benchmark_names(tmp_path):
    paper = {"MATH-500": "Math-500_Avg2", "MMLU-Pro": "MMLUPro-1000_Avg2"}
    rows = [{**row, "data_source": paper[row["data_source"]]} for row in _rows()]
    responses = ["<answer>3</answer>"] * len(rows)  # MATH-500: q1 right twice (1/2); MMLU-Pro: all wrong
    grades = asyncio.run(grade_all(rows, responses, format_mode="R1", judge=None))
    summary = write_summary(tmp_path, sample_records(rows, responses, grades))
    assert summary["metrics"]["eval/MATH-500/avg@2"] == 0.5 and summary["metrics"]["eval/MMLU-Pro/avg@2"] == 0.0
    assert summary["missing_benchmarks"]["general"] == ["GPQA-diamond", "TheoremQA", "WebInstruct-verified"]
    table = (tmp_path / "summary.md").read_text()
    assert "| Math-500_Avg2 | 2 | 4 | 50.0 |" in table and "| MMLUPro-1000_Avg2 | 2 | 4 | 0.0 |" in table


def test_grade_all_needs_one_response_per_row():
    with pytest.raises(ValueError, match="responses"):
        asyncio.run(grade_all(_rows(), ["x"], format_mode="R1", judge=None))


@pytest.mark.parametrize(
    ("row", "match"),
    [
        (
            {"data_source": "", "prompt": [{"role": "user", "content": "q"}], "reward_model": {"ground_truth": "1"}},
            "data_source",
        ),
        ({"data_source": "s", "prompt": [], "reward_model": {"ground_truth": "1"}}, "prompt"),
        (
            {"data_source": "s", "prompt": [{"role": "user", "content": "q"}], "reward_model": {"ground_truth": " "}},
            "ground_truth",
        ),
    ],
)
def test_bad_rows_are_named(tmp_path, row, match):
    path = write_rows([row], tmp_path / "bad.jsonl")
    with pytest.raises(ValueError, match=f"bad.jsonl row 0: .*{match}"):
        load_eval_rows([path])


def test_sampling_settings_are_checked():
    with pytest.raises(ValueError, match="top_p"):
        SamplingSettings(top_p=0)


def test_hf_generation_is_seeded_and_batch_independent_when_greedy(tiny_model):
    model_dir = str(tiny_model.name_or_path)
    rows = _rows()[:3]
    greedy = make_generator(model_dir, "hf", SamplingSettings(temperature=0.0, max_new_tokens=5), 1, batch_size=3)
    one_by_one = [greedy([row], [i])[0] for i, row in enumerate(rows)]
    assert greedy(rows, [0, 1, 2]) == one_by_one
    sampled = make_generator(model_dir, "hf", SamplingSettings(temperature=1.0, max_new_tokens=5, seed=7), 1)
    assert sampled(rows, [4, 5, 6]) == sampled(rows, [4, 5, 6])


def test_vllm_generation_passes_token_ids_and_a_seed_per_prompt(monkeypatch, small_tokenizer):
    """vllm is not installed here: a stand-in module records what the generator asks of it."""
    from harness.generation import chat_prompt_ids, request_seed

    calls = {"init": []}

    class LLM:
        def __init__(self, **kw):
            calls["init"].append(kw)

        def get_tokenizer(self):
            return small_tokenizer

        def generate(self, prompts, params, use_tqdm=True):
            calls["prompts"], calls["params"] = prompts, params
            return [
                SimpleNamespace(
                    outputs=[SimpleNamespace(text=f"out{len(p['prompt_token_ids'])}", finish_reason="stop")]
                )
                for p in prompts
            ]

    monkeypatch.setitem(sys.modules, "vllm", SimpleNamespace(LLM=LLM, SamplingParams=lambda **kw: kw))
    sampling = SamplingSettings(temperature=0.6, top_p=0.95, max_new_tokens=9, seed=4)
    generate = make_generator("model-dir", "vllm", sampling, tensor_parallel_size=2)
    rows = _rows()[:3]
    ids = [chat_prompt_ids(small_tokenizer, row["prompt"]) for row in rows]
    assert generate(rows[:2], [11, 12]) == [f"out{len(ids[0])}", f"out{len(ids[1])}"]
    assert generate(rows[2:], [13]) == [f"out{len(ids[2])}"]
    assert len(calls["init"]) == 1  # one engine for all calls, seeded with --seed
    assert calls["init"][0]["model"] == "model-dir" and calls["init"][0]["tensor_parallel_size"] == 2
    assert calls["init"][0]["seed"] == 4
    assert calls["prompts"] == [{"prompt_token_ids": ids[2]}]
    header = small_tokenizer.encode("<|im_start|>assistant\n")
    assert ids[2][-len(header) :] == header  # the prompt ends with the generation prompt
    seed = request_seed(4, 13)
    assert seed == int.from_bytes(hashlib.sha256(b"4/13").digest()[:4], "big") & 0x7FFFFFFF  # the seed of row 13
    assert calls["params"] == [{"temperature": 0.6, "top_p": 0.95, "max_tokens": 9, "seed": seed}]


def test_cli_on_cpu_with_the_tiny_model(tiny_model, small_tokenizer, tmp_path, capsys):
    model_dir = Path(tiny_model.name_or_path)
    data = write_rows(_rows(), tmp_path / "eval.parquet")
    out = tmp_path / "out"
    main(
        [
            "--model",
            str(model_dir),
            "--data",
            str(data),
            "--output-dir",
            str(out),
            "--backend",
            "hf",
            "--max-new-tokens",
            "4",
            "--temperature",
            "0.6",
            "--top-p",
            "0.95",
            "--batch-size",
            "4",
        ]
    )
    lines = [json.loads(x) for x in (out / "samples.jsonl").read_text().splitlines()]
    assert len(lines) == 8 and [x["data_source"] for x in lines] == ["MATH-500"] * 4 + ["MMLU-Pro"] * 4
    assert all(isinstance(x["response"], str) for x in lines)
    summary = json.loads((out / "summary.json").read_text())
    for source in ("MATH-500", "MMLU-Pro"):
        accs = [x["acc"] for x in lines if x["data_source"] == source]
        assert summary["metrics"][f"eval/{source}/avg@2"] == sum(accs) / len(accs)
    assert "| data source | k | samples | Avg@k (%) |" in capsys.readouterr().out


def test_judge_options(monkeypatch):
    base = ["--model", "m", "--data", "d.parquet"]
    assert judge_from_args(parse_args(base)) is None
    args = parse_args(
        base
        + [
            "--judge-base-url",
            "http://127.0.0.1:8000/v1",
            "--judge-model",
            "qwen-judge",
            "--judge-concurrency",
            "3",
            "--judge-timeout",
            "5",
            "--judge-retries",
            "4",
            "--judge-api-key-env",
            "RLPR_TEST_JUDGE_KEY",
        ]
    )
    monkeypatch.delenv("RLPR_TEST_JUDGE_KEY", raising=False)
    with pytest.raises(SystemExit, match="--judge-api-key-env=RLPR_TEST_JUDGE_KEY: that environment variable is not"):
        judge_from_args(args)
    monkeypatch.setenv("RLPR_TEST_JUDGE_KEY", "k")
    cfg = judge_from_args(args).config
    assert (cfg.base_url, cfg.model, cfg.api_key, cfg.concurrency, cfg.timeout_s, cfg.retries) == (
        "http://127.0.0.1:8000/v1",
        "qwen-judge",
        "k",
        3,
        5.0,
        4,
    )
    with pytest.raises(ValueError, match="judge model"):
        judge_from_args(parse_args(base + ["--judge-base-url", "http://127.0.0.1:8000/v1"]))


def _samples(out):
    return [json.loads(x) for x in (out / "samples.jsonl").read_text().splitlines()]


def test_a_killed_run_resumes_to_the_samples_of_an_uninterrupted_one(tiny_model, tmp_path, monkeypatch):
    from harness.generation import TransformersBackend

    model_dir = str(tiny_model.name_or_path)
    data = [write_rows(_rows(), tmp_path / "eval.parquet")]
    sampling = SamplingSettings(temperature=1.0, max_new_tokens=3, seed=3)  # sampled: resume must reseed exactly
    run = dict(sampling=sampling, backend="hf", batch_size=2, limit=6)  # three batches
    whole = evaluate(model_dir, data, tmp_path / "whole", **run)
    expected = _samples(tmp_path / "whole")
    assert [x["row"] for x in expected] == list(range(6))
    assert len({x["response"] for x in expected}) > 1  # a constant response could hide a reseeding bug

    calls = []
    real = TransformersBackend.generate

    def dies_after_two_batches(self, requests, sampling):
        if len(calls) == 2:
            raise RuntimeError("killed")
        calls.append(requests)
        return real(self, requests, sampling)

    monkeypatch.setattr(TransformersBackend, "generate", dies_after_two_batches)
    out = tmp_path / "killed"
    with pytest.raises(RuntimeError, match="killed"):
        evaluate(model_dir, data, out, **run)
    assert _samples(out) == expected[:4]  # both finished batches were on disk before the kill
    assert not (out / "summary.json").exists()
    # a kill in the middle of writing row 3 leaves half a line
    text = (out / "samples.jsonl").read_text()
    (out / "samples.jsonl").write_text(text[: len(text) - len(text.splitlines()[-1]) // 2 - 1])

    calls.clear()
    monkeypatch.setattr(TransformersBackend, "generate", lambda self, r, s: (calls.append(r), real(self, r, s))[1])
    resumed = evaluate(model_dir, data, out, **run)
    assert len(calls) == 2  # the batch of rows 2-3 again (row 3 was torn), then rows 4-5
    assert _samples(out) == expected  # same samples, in row order, none twice
    assert resumed == whole and (out / "summary.md").read_text() == (tmp_path / "whole" / "summary.md").read_text()

    calls.clear()
    assert evaluate(model_dir, data, out, **run) == whole and not calls  # a finished run generates nothing
    with pytest.raises(ValueError, match=r"other settings \(sampling"):
        evaluate(model_dir, data, out, **{**run, "sampling": SamplingSettings(temperature=0.5, max_new_tokens=3)})


def test_an_unwritable_output_dir_fails_before_any_generation(tiny_model, tmp_path, monkeypatch):
    import rlpr.evaluate as module

    def generate(*args, **kwargs):
        raise AssertionError("generated before checking the output folder")

    monkeypatch.setattr(module, "make_generator", generate)
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    data = write_rows(_rows(), tmp_path / "eval.parquet")
    with pytest.raises(ValueError, match="a-file/out'? cannot be written"):
        main(
            [
                "--model",
                str(tiny_model.name_or_path),
                "--data",
                str(data),
                "--output-dir",
                str(blocker / "out"),
                "--backend",
                "hf",
                "--max-new-tokens",
                "2",
            ]
        )


def test_k_samples_per_row_from_the_file_name(tiny_model, tmp_path):
    """One row per question in a file named _avg2 (any case): two samples per row, each question's two samples share
    its id, and the summary says avg@2; the same rows repeated in a _Avg2 file are refused."""
    model_dir = str(tiny_model.name_or_path)
    data = [write_rows(_rows(repeat=1), tmp_path / "bench_avg2.parquet")]
    sampling = SamplingSettings(temperature=1.0, max_new_tokens=2, seed=1)
    summary = evaluate(model_dir, data, tmp_path / "out", sampling=sampling, backend="hf", batch_size=4)
    lines = _samples(tmp_path / "out")
    assert len(lines) == 8 and [x["sample"] for x in lines] == [0, 1] * 4
    assert [x["question"] for x in lines[::2]] == [x["question"] for x in lines[1::2]]
    assert len({x["question"] for x in lines}) == 4
    for source in ("MATH-500", "MMLU-Pro"):
        accs = [x["acc"] for x in lines if x["data_source"] == source]
        assert summary["metrics"][f"eval/{source}/avg@2"] == sum(accs) / 4
    repeated = [write_rows(_rows(repeat=2), tmp_path / "bench_Avg2.parquet")]
    with pytest.raises(ValueError, match="look repeated already"):
        evaluate(model_dir, repeated, tmp_path / "refused", sampling=sampling, backend="hf")
    once = evaluate(
        model_dir,
        repeated,
        tmp_path / "once",
        sampling=sampling,
        backend="hf",
        batch_size=4,
        samples_from_file_name=False,
    )
    assert once["samples"] == {"MATH-500": 4, "MMLU-Pro": 4} and "eval/MATH-500/avg@2" in once["metrics"]
