"""``python -m rlpr.evaluate``: grading and summaries on fixed responses; the CPU path with the tiny model."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from rlpr.data_checks import write_rows
from rlpr.data_prep import load_source, prepare_rows
from rlpr.evaluate import (
    SamplingSettings,
    generate_hf,
    generate_vllm,
    grade_all,
    judge_from_args,
    load_eval_rows,
    main,
    parse_args,
    render_prompts,
    sample_records,
    write_outputs,
)

DATA = Path(__file__).parent / "data"


def _rows():
    math, _ = prepare_rows("MATH-500", load_source(str(DATA / "math500.jsonl")))  # 2 questions x k=2
    mc, _ = prepare_rows("MMLU-Pro", load_source(str(DATA / "mmlu_pro.jsonl")))  # 2 questions x k=2
    return math + mc


def test_fixed_responses_give_the_expected_avg_at_k(tmp_path):
    rows = _rows()
    # MATH-500: q0 (3/4) right once of 2, q1 (3) right twice -> 3/4. MMLU-Pro: q0 (A) wrong twice, q1 (C) right once.
    responses = [
        "<think>a</think> <answer>\\boxed{0.75}</answer>", "<think>a</think> <answer>1</answer>",
        "<answer>3</answer>", "<think>b</think> <answer>x = 3</answer>",
        "<think>c</think> <answer>B</answer>", "no answer at all",
        "<think>d</think> <answer>The answer is (C)</answer>", "<think>d</think> <answer>D</answer>",
    ]
    grades = asyncio.run(grade_all(rows, responses, format_mode="R1", judge=None))
    assert [g.acc for g in grades] == [1, 0, 1, 1, 0, 0, 1, 0]
    summary = write_outputs(tmp_path, sample_records(rows, responses, grades))
    m = summary["metrics"]
    assert m["eval/MATH-500/avg@2"] == 0.75 and m["eval/MMLU-Pro/avg@2"] == 0.25
    assert m["eval/general/avg"] == 0.25 and m["eval/math/avg"] == 0.75 and m["eval/overall/avg"] == 0.5
    assert summary["samples"] == {"MATH-500": 4, "MMLU-Pro": 4} and summary["no_answer"] == 1

    lines = [json.loads(x) for x in (tmp_path / "samples.jsonl").read_text().splitlines()]
    assert len(lines) == 8
    assert lines[3]["prediction"] == "x = 3" and lines[3]["sample"] == 1
    assert lines[2]["format"] == 0.0 and lines[5]["has_answer"] == 0.0 and lines[5]["prediction"] is None
    table = (tmp_path / "summary.md").read_text()
    assert "| MATH-500 | 2 | 4 | 75.0 |" in table and "| MMLU-Pro | 2 | 4 | 25.0 |" in table
    assert "| **overall average** | | | 50.0 |" in table
    assert json.loads((tmp_path / "summary.json").read_text()) == summary


def test_grade_all_needs_one_response_per_row():
    with pytest.raises(ValueError, match="responses"):
        asyncio.run(grade_all(_rows(), ["x"], format_mode="R1", judge=None))


@pytest.mark.parametrize(
    ("row", "match"),
    [
        ({"data_source": "", "prompt": [{"role": "user", "content": "q"}], "reward_model": {"ground_truth": "1"}},
         "data_source"),
        ({"data_source": "s", "prompt": [], "reward_model": {"ground_truth": "1"}}, "prompt"),
        ({"data_source": "s", "prompt": [{"role": "user", "content": "q"}], "reward_model": {"ground_truth": " "}},
         "ground_truth"),
    ],
)
def test_bad_rows_are_named(tmp_path, row, match):
    path = write_rows([row], tmp_path / "bad.jsonl")
    with pytest.raises(ValueError, match=f"bad.jsonl row 0: .*{match}"):
        load_eval_rows([path])


def test_sampling_settings_are_checked():
    with pytest.raises(ValueError, match="top_p"):
        SamplingSettings(top_p=0)


def test_hf_generation_is_seeded_and_batch_independent_when_greedy(tiny_model, small_tokenizer):
    original = small_tokenizer.padding_side
    small_tokenizer.padding_side = "right"
    try:
        prompts = render_prompts(small_tokenizer, _rows()[:3])
        assert prompts[0].endswith("<|im_start|>assistant\n")
        greedy = SamplingSettings(temperature=0.0, max_new_tokens=5)
        one_by_one = [generate_hf(tiny_model, small_tokenizer, [p], greedy)[0] for p in prompts]
        assert generate_hf(tiny_model, small_tokenizer, prompts, greedy, batch_size=3) == one_by_one
        sampled = SamplingSettings(temperature=1.0, max_new_tokens=5, seed=7)
        assert generate_hf(tiny_model, small_tokenizer, prompts, sampled) == generate_hf(
            tiny_model, small_tokenizer, prompts, sampled)
        assert small_tokenizer.padding_side == "right"  # generation pads on the left, then restores the caller's
    finally:
        small_tokenizer.padding_side = original


def test_vllm_generation_passes_token_ids_and_sampling(monkeypatch):
    """vllm is not installed here: a stand-in module records what generate_vllm asks of it."""
    calls = {}

    class LLM:
        def __init__(self, **kw):
            calls["init"] = kw

        def generate(self, prompts, params):
            calls["prompts"], calls["params"] = prompts, params
            return [SimpleNamespace(outputs=[SimpleNamespace(text=f"out{len(p['prompt_token_ids'])}")])
                    for p in prompts]

    monkeypatch.setitem(sys.modules, "vllm", SimpleNamespace(LLM=LLM, SamplingParams=lambda **kw: kw))
    sampling = SamplingSettings(temperature=0.6, top_p=0.95, max_new_tokens=9, seed=4)
    assert generate_vllm("model-dir", [[1, 2], [3, 4, 5]], sampling, tensor_parallel_size=2) == ["out2", "out3"]
    assert calls["init"] == {"model": "model-dir", "tensor_parallel_size": 2, "seed": 4}
    assert calls["prompts"] == [{"prompt_token_ids": [1, 2]}, {"prompt_token_ids": [3, 4, 5]}]
    assert calls["params"] == {"temperature": 0.6, "top_p": 0.95, "max_tokens": 9, "n": 1}


def test_cli_on_cpu_with_the_tiny_model(tiny_model, small_tokenizer, tmp_path, capsys):
    model_dir = Path(tiny_model.name_or_path)
    data = write_rows(_rows(), tmp_path / "eval.parquet")
    out = tmp_path / "out"
    main(["--model", str(model_dir), "--data", str(data), "--output-dir", str(out), "--backend", "hf",
          "--max-new-tokens", "4", "--temperature", "0.6", "--top-p", "0.95", "--batch-size", "4"])
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
    args = parse_args(base + ["--judge-base-url", "http://127.0.0.1:8000/v1", "--judge-model", "qwen-judge",
                              "--judge-concurrency", "3", "--judge-timeout", "5", "--judge-retries", "4",
                              "--judge-api-key-env", "RLPR_TEST_JUDGE_KEY"])
    monkeypatch.delenv("RLPR_TEST_JUDGE_KEY", raising=False)
    with pytest.raises(SystemExit, match="RLPR_TEST_JUDGE_KEY"):
        judge_from_args(args)
    monkeypatch.setenv("RLPR_TEST_JUDGE_KEY", "k")
    cfg = judge_from_args(args).config
    assert (cfg.base_url, cfg.model, cfg.api_key, cfg.concurrency, cfg.timeout_s, cfg.retries) == (
        "http://127.0.0.1:8000/v1", "qwen-judge", "k", 3, 5.0, 4)
    with pytest.raises(ValueError, match="judge model"):
        judge_from_args(parse_args(base + ["--judge-base-url", "http://127.0.0.1:8000/v1"]))
