"""CPU smoke run of the whole judge-as-reward loop: ``JudgeRewardTrainer.fit()`` (verl's classic RayPPOTrainer plus
the judge's step metrics) on the CPU backend with a tiny policy, rewards from rm_r1.judge_reward through verl's own
reward loop, and a tiny warm-started judge behind ``python -m rm_r1.serve_judge`` (started and stopped here). Also the
data preparation it uses."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import pandas as pd
import pytest

from rm_r1 import judge_reward as jr

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = ROOT / "configs" / "judge_reward"
SCRIPT = ROOT / "scripts" / "prepare_judge_reward_data.py"
PAIRS = ROOT / "rm_r1" / "smoke_pairs.jsonl"
SMOKE_PAIRS = 6  # 4 training prompts (2 steps of 2) and 2 held out: the fewer questions, the shorter the warm start
INSTRUCTION = "Which reply is better? End with {verdict_a} or {verdict_b}.\n"


def _script():
    spec = importlib.util.spec_from_file_location("prepare_judge_reward_data", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_prepare_data_from_preference_pairs_and_a_local_file(small_tokenizer, tmp_path):
    local = tmp_path / "local.jsonl"
    rows = [
        {"prompt": "Name a colour.", "reference": "Blue."},
        {
            "prompt": [
                {"role": "user", "content": "Hi"},
                {"role": "assistant", "content": "Hello"},
                {"role": "user", "content": "Count to three."},
            ],
            "reference": "1, 2, 3.",
        },
        {"prompt": "No reference here.", "reference": ""},
        {"prompt": [{"role": "assistant", "content": "no user turn"}], "reference": "x"},
        {"prompt": "word " * 400, "reference": "too long a prompt"},
    ]
    local.write_text("".join(json.dumps(r) + "\n" for r in rows))

    def prepare(out: str, seed: int) -> dict:
        return _script().main(
            [
                "--output-dir",
                str(tmp_path / out),
                "--tokenizer",
                "unused",
                "--local",
                str(local),
                "--sources",
                "skywork",
                "--skywork",
                str(PAIRS),
                "--val-size",
                "3",
                "--seed",
                str(seed),
                "--max-prompt-length",
                "200",
            ],
            tokenizer=small_tokenizer,
        )

    report = prepare("out", 5)
    pairs = [json.loads(line) for line in PAIRS.read_text().splitlines()]
    assert report["rows"] == {"train": len(pairs) + 2 - 3, "val": 3}
    assert report["dropped"] == {
        f"{local}: empty or non-string reference": 1,
        f"{local}: prompt is neither a question nor a message list ending with a user turn": 1,
        "local.jsonl: prompt over 200 tokens": 1,
    }
    assert json.loads((tmp_path / "out" / "report.json").read_text()) == report
    train = pd.read_parquet(tmp_path / "out" / "train.parquet").to_dict("records")
    val = pd.read_parquet(tmp_path / "out" / "val.parquet").to_dict("records")
    references = {r["reward_model"]["ground_truth"] for r in train + val}
    # the references are the CHOSEN replies of the pairs, and the local file's usable rows
    assert references == {p["chosen"][-1]["content"] for p in pairs} | {"Blue.", "1, 2, 3."}
    for row in train + val:
        assert list(jr.judge_context(row["extra_info"])) == [dict(m) for m in row["prompt"]]
    # seeded: the same seed gives the same split, another seed another one
    assert prepare("again", 5) == report
    assert pd.read_parquet(tmp_path / "again" / "val.parquet").equals(pd.read_parquet(tmp_path / "out" / "val.parquet"))
    assert prepare("other", 6)["rows"] == report["rows"]
    assert not pd.read_parquet(tmp_path / "other" / "val.parquet")["reward_model"].equals(
        pd.read_parquet(tmp_path / "out" / "val.parquet")["reward_model"]
    )


def test_prepare_data_refuses_an_unwritable_folder(small_tokenizer, tmp_path):
    blocked = tmp_path / "blocked"
    blocked.write_text("a file, not a folder")
    with pytest.raises((SystemExit, FileExistsError, NotADirectoryError)):
        _script().main(
            ["--output-dir", str(blocked / "out"), "--tokenizer", "x", "--sources", "skywork", "--skywork", str(PAIRS)],
            tokenizer=small_tokenizer,
        )
    assert not (blocked.parent / "out").exists()


def _warm_judge(tokenizer, files: list[Path], out: Path, prompt_file: Path) -> Path:
    """A tiny random judge warm-started to answer judge prompts of the smoke's questions with either verdict."""
    from cpu_backend import warm_start
    from offline_models import build_tiny_qwen2
    from rm_r1.prompts import build_judge_messages
    from rm_r1.reward import VERDICT_TAGS

    base = out / "judge-random"
    build_tiny_qwen2(tokenizer, seed=1).save_pretrained(base)
    tokenizer.save_pretrained(base)
    examples = []
    for row in pd.concat([pd.read_parquet(f) for f in files]).to_dict("records"):
        context, reference = jr.judge_context(row["extra_info"]), row["reward_model"]["ground_truth"]
        for side in ("A", "B"):
            messages = build_judge_messages(context, "some reply", reference, "instruct", str(prompt_file))
            examples.append((messages, VERDICT_TAGS[side]))
    return warm_start(base, out / "judge-warm", tokenizer, examples, steps=25, lr=1e-2, seed=0)


@pytest.mark.slow
def test_cpu_smoke_grpo_with_a_served_judge_as_the_reward(small_tokenizer, tmp_path, monkeypatch, restore_threads):
    import torch

    from cpu_backend import build_cpu_trainer, compose_cpu_config
    from offline_models import build_tiny_qwen2
    from rlpr.reporting import read_metrics
    from rm_r1.judge_trainer import JudgeRewardTrainer

    torch.set_num_threads(1)
    started = time.monotonic()
    data = tmp_path / "data"
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text("".join(PAIRS.read_text().splitlines(keepends=True)[:SMOKE_PAIRS]))
    _script().main(
        [
            "--output-dir",
            str(data),
            "--tokenizer",
            "x",
            "--sources",
            "skywork",
            "--skywork",
            str(pairs),
            "--val-size",
            "2",
            "--max-prompt-length",
            "256",
        ],
        tokenizer=small_tokenizer,
    )
    prompt_file = tmp_path / "judge_instruction.txt"
    prompt_file.write_text(INSTRUCTION)
    splits = [data / "train.parquet", data / "val.parquet"]
    judge = _warm_judge(small_tokenizer, splits, tmp_path / "models", prompt_file)
    prepared = time.monotonic() - started
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    # the server loads while the trainer is built; its first line says where it listens
    server = subprocess.Popen(
        [sys.executable, "-m", "rm_r1.serve_judge", "--model", str(judge)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        policy = tmp_path / "models" / "policy"
        build_tiny_qwen2(small_tokenizer, seed=2).save_pretrained(policy)
        small_tokenizer.save_pretrained(policy)
        line = server.stdout.readline()
        assert line.startswith("serving "), server.stderr.read()
        base_url = line.split(" at ")[1].strip()
        assert base_url.startswith("http://127.0.0.1:")
        config = compose_cpu_config(
            "smoke_cpu",
            config_dir=str(CONFIGS),
            overrides=[
                f"actor_rollout_ref.model.path={policy}",
                f"data.train_files={data / 'train.parquet'}",
                f"data.val_files={data / 'val.parquet'}",
                f"reward.custom_reward_function.reward_kwargs.base_url={base_url}",
                f"reward.custom_reward_function.reward_kwargs.prompt_file={prompt_file}",
                f"trainer.default_local_dir={tmp_path / 'ckpt'}",
                f"trainer.rollout_data_dir={tmp_path / 'rollouts'}",
                f"trainer.validation_data_dir={tmp_path / 'val'}",
                "trainer.logger=[console,file]",
            ],
        )
        trainer = build_cpu_trainer(JudgeRewardTrainer, config, small_tokenizer)
        fit_started = time.monotonic()
        monkeypatch.setenv("VERL_FILE_LOGGER_PATH", str(tmp_path / "metrics.jsonl"))
        trainer.fit()
        fit_seconds = time.monotonic() - fit_started
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert server.returncode == 0  # stopped by SIGTERM, cleanly

    k, orders = 2, 2
    varied, dumped = {}, {}
    for step in (1, 2):
        samples = [json.loads(x) for x in (tmp_path / "rollouts" / f"{step}.jsonl").read_text().splitlines()]
        assert len(samples) == 2 * 4  # 2 prompts x 4 replies
        for sample in samples:
            assert set(jr.EXTRA_KEYS) <= sample.keys()
            assert sample["judge_calls"] == k * orders
            assert sample["judge_votes"] + sample["judge_failed"] == sample["judge_calls"]
            # reward = (wins - losses) / votes: a multiple of 1/votes in [-1, 1] (or the neutral 0)
            votes = sample["judge_votes"]
            assert -1 <= sample["score"] <= 1 and (votes == 0 or (sample["score"] * votes) % 1 == pytest.approx(0))
        groups = defaultdict(set)
        for sample in samples:
            groups[sample["input"]].add(sample["score"])
        calls, failed = sum(s["judge_calls"] for s in samples), sum(s["judge_failed"] for s in samples)
        voted = [s["judge_agreement"] for s in samples if s["judge_votes"] > 0]
        dumped[step] = {  # the judge/* step metrics, computed from the rollout dump
            "judge/calls_total": calls,
            "judge/calls_per_sample": calls / len(samples),
            "judge/failed_total": failed,
            "judge/failed_frac": failed / calls,
            "judge/agreement_mean": sum(voted) / len(voted) if voted else 0.0,
            "judge/truncated_total": sum(s["judge_truncated"] for s in samples),
            "judge/neutral_frac": sum(s["judge_neutral"] for s in samples) / len(samples),
        }
        varied[step] = sum(len(v) > 1 for v in groups.values())
    # the warm-started judge samples both verdicts: rewards differ inside some group, so GRPO has a signal
    assert any(varied.values()), varied
    assert all(d["judge/calls_per_sample"] == 4 for d in dumped.values())

    logged, bad = read_metrics(tmp_path / "metrics.jsonl")
    assert bad == 0 and {1, 2} <= set(logged)
    for step in (1, 2):  # JudgeRewardTrainer logs the judge's work on each training step (means of <= 8 numbers)
        assert {key: logged[step].get(key) for key in dumped[step]} == pytest.approx(dumped[step], rel=1e-12), step
    for step in (0, 2):  # validation logs the judge's counts per data source
        metrics = logged[step]
        calls = [v for key, v in metrics.items() if key.startswith("val-aux/") and "/judge_calls/mean" in key]
        assert calls == [4.0]
        assert any("/judge_failed/mean" in key for key in metrics)
        assert any("/judge_agreement/mean" in key for key in metrics)
    assert any(logged[s]["critic/advantages/max"] > 0 for s in (1, 2))
    total = time.monotonic() - started
    print(
        f"\njudge-reward smoke: {dumped}, groups with varied rewards {varied}; data and judge warm start "
        f"{prepared:.1f} s, fit {fit_seconds:.1f} s, whole test {total:.1f} s"
    )
