"""The evaluation command's pure helpers and its argument checks (no model, no server)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rm_r1.benchmarks import load_rmb, load_rmbench
from rm_r1.evaluate import (
    _limit,
    main,
    markdown_table,
    partial_note,
    plan_jobs,
    read_judgements,
    read_response,
    score_judgements,
)
from rm_r1.scaling import swapped

DATA = Path(__file__).parent / "eval_data"


def test_plan_jobs_orders():
    pairs = load_rmb(DATA / "rmb")
    jobs = plan_jobs(pairs, seed=3, samples=4, both_orders=False)
    assert len(jobs) == 4 * len(pairs)
    assert all(job.swap == swapped(3, job.pair_id, job.sample) for job in jobs)
    both = plan_jobs(pairs, seed=3, samples=1, both_orders=True)
    assert [(j.sample, j.swap) for j in both[:2]] == [(0, False), (1, True)] and len(both) == 2 * len(pairs)


def test_read_response_maps_back_to_the_original_order():
    assert read_response("... <answer>[[B]]</answer>", swap=True, mode="pairwise", rule="anywhere") == {"pick": 0}
    assert read_response("... <answer>[[B]]</answer>", swap=False, mode="pairwise", rule="anywhere") == {"pick": 1}
    assert read_response("[[A]] or [[B]]", swap=False, mode="pairwise", rule="anywhere") == {"pick": None}
    # the strict reference rule misses a verdict followed by more than 59 characters
    late = "<answer>[[A]]</answer>" + " trailing words" * 5
    assert read_response(late, swap=False, mode="pairwise", rule="strict_tail") == {"pick": None}
    assert read_response(late, swap=False, mode="pairwise", rule="anywhere") == {"pick": 0}
    assert read_response("Scores: \\boxed{9, 2}", swap=True, mode="pointwise", rule="anywhere") == {"scores": [2, 9]}
    assert read_response("Scores: 9, 2", swap=True, mode="pointwise", rule="anywhere") == {"scores": None}


def test_limit_keeps_whole_records():
    rmbench = _limit(load_rmbench(DATA / "rmbench"), 2)
    assert len(rmbench) == 18 and len({(c.meta["domain"], c.meta["id"]) for c in rmbench}) == 2
    rmb = _limit(load_rmb(DATA / "rmb"), 3)
    assert [c.pair_id for c in rmb] == [
        "harm-bon-1/0",
        "harm-bon-1/1",
        "harm-bon-1/2",
        "help-bon-1/0",
        "help-bon-1/1",
        "harm-pair-1",
    ]


def test_read_judgements_names_a_bad_line(tmp_path):
    path = tmp_path / "j.jsonl"
    path.write_text(json.dumps({"pair_id": "a", "sample": 0}) + "\n{oops\n" + json.dumps({"pair_id": "b"}) + "\n")
    with pytest.raises(ValueError, match=r"j\.jsonl:2: not a judgement record"):
        read_judgements(path)


def test_markdown_table_rmbench_domains_and_missing():
    scores = {"chat": {"total": 0.5}, "math": {"total": 0.25}, "easy": 0.9, "normal": 0.5, "hard": 0.1, "total": 0.5}
    table = markdown_table("rmbench", {"greedy": {"scores": scores, "accuracy": 0.625}})
    header = "| run | chat | math | code | safety | easy | normal | hard | total | pair accuracy |"
    assert table.splitlines()[0] == header
    assert table.splitlines()[2] == "| greedy | 50.0 | 25.0 | n/a | n/a | 90.0 | 50.0 | 10.0 | 50.0 | 62.5 |"


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


def _judgement(pair_id, sample, swap, response):
    return (pair_id, sample), {"pair_id": pair_id, "sample": sample, "swap": swap, "response": response}


def test_pointwise_voting_sums_scores_in_the_original_order():
    pairs = [p for p in load_rmb(DATA / "rmb") if p.pair_id == "harm-pair-1"]
    judgements = dict(
        [
            _judgement("harm-pair-1", 0, False, "Scores: \\boxed{7, 4}"),  # chosen 7, rejected 4
            _judgement("harm-pair-1", 1, True, "Scores: \\boxed{6, 8}"),  # shown swapped: chosen 8, rejected 6
            _judgement("harm-pair-1", 2, False, "Scores: \\boxed{2, 9}"),  # chosen 2, rejected 9
            _judgement("harm-pair-1", 3, False, "no scores"),
        ]
    )
    scored = score_judgements(
        "rmb",
        pairs,
        judgements,
        mode="pointwise",
        rule="anywhere",
        seed=0,
        ks=[1, 2, 3, 4],
        both_orders=False,
        tie="random",
        failures="abstain",
    )
    results = scored["results"]
    assert scored["parse_failures"] == 1
    assert results["voting@1"]["accuracy"] == 1.0 and results["voting@1"]["agreement"] == 1.0
    assert results["voting@2"]["accuracy"] == 1.0  # totals 15 vs 10
    assert results["voting@3"]["accuracy"] == 0.0  # totals 17 vs 19
    assert results["voting@3"]["agreement"] == pytest.approx(1 / 3)  # only sample 2 prefers the rejected reply
    assert results["voting@4"]["accuracy"] == 0.0 and results["voting@4"]["agreement"] == pytest.approx(1 / 4)
    assert results["voting@4"]["scores"]["pairwise_harmlessness"] == 0.0


def test_pairwise_voting_rules_in_scoring():
    pairs = [p for p in load_rmb(DATA / "rmb") if p.pair_id == "harm-pair-1"]
    judgements = dict(
        [
            _judgement("harm-pair-1", 0, True, "<answer>[[B]]</answer>"),  # chosen
            _judgement("harm-pair-1", 1, False, "<answer>[[B]]</answer>"),  # rejected
            _judgement("harm-pair-1", 2, False, "unsure"),
        ]
    )

    def accuracy(k, **rules):
        scored = score_judgements(
            "rmb", pairs, judgements, mode="pairwise", rule="anywhere", seed=0, ks=[k], both_orders=False, **rules
        )
        return scored["results"][f"voting@{k}"]["accuracy"]

    assert accuracy(1, tie="wrong", failures="abstain") == 1.0
    assert accuracy(2, tie="wrong", failures="abstain") == 0.0  # 1-1 tie
    assert accuracy(3, tie="wrong", failures="wrong") == 0.0  # three-way tie with "no decision"
    coin = [accuracy(2, tie="random", failures="abstain") for _ in range(3)]
    assert len(set(coin)) == 1  # the coin is seeded by (seed, pair, k)
    with pytest.raises(ValueError, match="voting@4 needs 4 judgements"):
        accuracy(4, tie="wrong", failures="abstain")


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


def test_partial_benchmarks_get_a_note_naming_what_is_missing():
    rmbench = {"missing_domains": ["code", "safety"]}
    assert partial_note("rmbench", rmbench).startswith("PARTIAL rmbench: the data lacks 2 domains (code, safety);")
    assert partial_note("rmbench", {"missing_domains": []}) is None
    rb = {"missing_sections": ["Safety"], "missing_subsets": ["donotanswer"]}
    assert "lacks 1 sections (Safety); 1 subsets (donotanswer)" in partial_note("rewardbench", rb)
    assert "2 parts (bon_helpfulness, bon_harmlessness)" in partial_note(
        "rmb", {"missing_parts": ["bon_helpfulness", "bon_harmlessness"]}
    )
