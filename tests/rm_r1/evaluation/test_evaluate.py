"""The evaluation command's argument checks (no model, no server)."""

from __future__ import annotations

from pathlib import Path

import pytest

from rm_r1.evaluation.evaluate import main

DATA = Path(__file__).parent / "eval_data"


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--both-orders", "--k", "1,2"], "exclude each other"),
        (["--k", "1,4", "--temperature", "0"], "needs --temperature > 0"),
        (["--mode", "pointwise", "--prompt-file", "p.txt"], "pointwise mode has its own prompt"),
    ],
)
def test_conflicting_options_are_refused(tmp_path, extra, message):
    base = [
        "--benchmark",
        "rmb",
        "--data",
        str(DATA / "rmb"),
        "--model",
        "m",
        "--prompt-family",
        "instruct",
        "--backend",
        "openai",
        "--output-dir",
        str(tmp_path),
    ]
    with pytest.raises(SystemExit, match=message):
        main(base + extra)


@pytest.mark.parametrize("k", ["0,2", "two"])
def test_bad_k_is_a_usage_error(tmp_path, k, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(
            [
                "--benchmark",
                "rmb",
                "--model",
                "m",
                "--prompt-family",
                "instruct",
                "--backend",
                "hf",
                "--output-dir",
                str(tmp_path),
                "--k",
                k,
            ]
        )
    assert exit_info.value.code == 2 and "--k" in capsys.readouterr().err


def test_prompt_family_is_required(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["--benchmark", "rmb", "--model", "m", "--backend", "hf", "--output-dir", str(tmp_path)])
    assert "--prompt-family" in capsys.readouterr().err


def test_rmb_without_data_names_the_flag(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(
            [
                "--benchmark",
                "rmb",
                "--model",
                "m",
                "--prompt-family",
                "instruct",
                "--backend",
                "openai",
                "--base-url",
                "http://127.0.0.1:9/v1",
                "--output-dir",
                str(tmp_path),
            ]
        )
    assert exit_info.value.code == 2 and "--benchmark rmb needs --data" in capsys.readouterr().err


def test_help_lists_the_inference_time_scaling_options(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert exit_info.value.code == 0
    for option in ("--meta-rm MODEL", "--meta-rm-backend", "--meta-rm-base-url", "--bon-strategy LIST",
                   "--elo-method", "--elo-permutations", "--reasks"):  # fmt: skip
        assert option in text
    assert "best-rated max(1, k//2)" in text and "knockout (it wins a knockout tournament)" in text


def test_unknown_bon_strategy_is_a_usage_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--benchmark", "rmb", "--model", "m", "--prompt-family", "instruct", "--backend", "hf",
              "--output-dir", str(tmp_path), "--bon-strategy", "elo,swiss"])  # fmt: skip
    assert exit_info.value.code == 2 and "unknown best-of-N strategy ['swiss']" in capsys.readouterr().err


def test_the_default_budget_is_the_official_evaluations_for_both_families():
    """RM-R1's official evaluation script passes max_tokens=50000 to vLLM for every model it evaluates."""
    from rm_r1.evaluation.evaluate import build_parser

    base = ["--benchmark", "rewardbench", "--model", "m", "--backend", "hf", "--output-dir", "o"]
    for family in ("instruct", "reasoning"):
        assert build_parser().parse_args([*base, "--prompt-family", family]).max_new_tokens == 50_000
