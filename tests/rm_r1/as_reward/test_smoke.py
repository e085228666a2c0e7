"""``python -m rm_r1.judge_smoke``, the CPU smoke run of the whole judge-as-reward loop: ``JudgeRewardTrainer.fit()``
(verl's classic RayPPOTrainer plus the judge's step metrics and fail-fast rule) on the CPU backend with a tiny policy,
rewards from rm_r1.as_reward.reward through verl's own reward loop, and a tiny warm-started judge behind
``python -m harness.chat_server`` (or an external judge: the fake server of the tests). Also the data preparation it
uses."""

from __future__ import annotations

import importlib.util
import json
import time
from collections import defaultdict
from pathlib import Path

import pandas as pd
import pytest

from rm_r1.as_reward import reward as jr

ROOT = Path(__file__).resolve().parents[3]
SCRIPT = ROOT / "scripts" / "prepare_judge_reward_data.py"
PAIRS = ROOT / "rm_r1" / "training" / "smoke_pairs.jsonl"


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


@pytest.mark.slow
def test_cpu_smoke_grpo_with_a_served_judge_as_the_reward(tmp_path, capsys, restore_threads):
    """``python -m rm_r1.judge_smoke``'s tiny judge behind ``harness.chat_server`` (``main`` builds and runs
    ``JudgeRewardTrainer.fit()``), with the rollout dumps and the file logger on."""
    from harness.reporting import read_metrics
    from rm_r1 import judge_smoke  # the command users run

    started = time.monotonic()
    overrides = [f"trainer.rollout_data_dir={tmp_path / 'rollouts'}", f"trainer.validation_data_dir={tmp_path / 'val'}"]
    assert judge_smoke.main(["--backend", "inprocess", "--output-dir", str(tmp_path / "out"), *overrides]) == 0
    out = capsys.readouterr().out
    assert "judge: the tiny warm-started judge at http://127.0.0.1:" in out and "Done: step 2 of 2." in out
    assert (tmp_path / "out" / "metrics.jsonl").exists() and (
        tmp_path / "out" / "checkpoints" / "global_step_2"
    ).exists()

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

    logged, bad = read_metrics(tmp_path / "out" / "metrics.jsonl")
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
    print(f"\njudge-reward smoke: {dumped}, groups with varied rewards {varied}; {time.monotonic() - started:.1f} s")


@pytest.mark.slow
def test_judge_smoke_with_an_external_judge_keeps_its_api_key_secret(
    openai_server, tmp_path, monkeypatch, capsys, restore_threads
):
    from rm_r1 import judge_smoke  # the command users run

    secret = "sk-judge-smoke-7f3a9c"
    monkeypatch.setenv("SMOKE_JUDGE_KEY", secret)
    server = openai_server(lambda body: "<answer>[[A]]</answer>")
    out_dir = tmp_path / "out"
    argv = ["--backend", "inprocess", "--output-dir", str(out_dir), "--judge-url", server.base_url, "--judge-model"]
    argv += ["ext", "--api-key-env"]
    rollouts = f"trainer.rollout_data_dir={tmp_path / 'rollouts'}"
    assert judge_smoke.main([*argv, "SMOKE_JUDGE_KEY", rollouts]) == 0
    printed = capsys.readouterr()
    assert server.bodies and {h["Authorization"] for h in server.headers} == {f"Bearer {secret}"}
    assert {b["model"] for b in server.bodies} == {"ext"}
    # the key is nowhere but in the requests: not in what was printed, the metrics, the rollouts or the checkpoints
    assert secret not in printed.out + printed.err
    files = [f for folder in (out_dir, tmp_path / "rollouts") for f in folder.rglob("*") if f.is_file()]
    assert any("checkpoints" in str(f) for f in files) and any(f.name == "metrics.jsonl" for f in files)
    assert [f for f in files if secret.encode() in f.read_bytes()] == []


@pytest.mark.slow
def test_judge_smoke_stops_naming_an_always_failing_judge(openai_server, tmp_path, capsys, restore_threads):
    from rm_r1 import judge_smoke  # the command users run

    server = openai_server(lambda body: 503)
    started = time.monotonic()
    status = judge_smoke.main(
        ["--backend", "inprocess", "--output-dir", str(tmp_path / "out"), "--judge-url", server.base_url]
    )
    seconds = time.monotonic() - started
    err = capsys.readouterr().err
    assert status != 0 and seconds < 300
    assert f"the judge at {server.base_url}/chat/completions failed 100% of its calls" in err
    assert "most frequent failure: http_503" in err
    assert not (tmp_path / "out" / "checkpoints" / "global_step_2").exists()  # stopped before step 2's update
