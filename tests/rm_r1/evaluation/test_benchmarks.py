"""Benchmark loaders over small local files with the real field names (docs/data_formats.md#rm-r1-benchmark-files)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rm_r1.evaluation.benchmarks import load_benchmark, load_rewardbench, load_rmb, load_rmbench
from rm_r1.evaluation.scorers import score_rmb, score_rmbench

DATA = Path(__file__).parent / "eval_data"


def test_rewardbench_local_jsonl():
    pairs = load_rewardbench(DATA / "rewardbench_filtered.jsonl")
    assert [p.pair_id for p in pairs] == ["30", "431", "1102", "2201", "3405", "4512"]
    first = pairs[0]
    assert first.conversation == "Name the capital of Australia."
    assert first.chosen == "The capital of Australia is Canberra."
    assert first.rejected == "Sydney is the capital city of Australia."
    assert first.meta == {"subset": "alpacaeval-easy"}


def test_rewardbench_parquet_and_json_agree(tmp_path):
    import pandas as pd

    rows = [json.loads(line) for line in (DATA / "rewardbench_filtered.jsonl").read_text().splitlines()]
    pd.DataFrame(rows).to_parquet(tmp_path / "filtered.parquet")
    (tmp_path / "copy").mkdir()
    (tmp_path / "copy" / "filtered.json").write_text(json.dumps(rows))
    expected = load_rewardbench(DATA / "rewardbench_filtered.jsonl")
    assert load_rewardbench(tmp_path / "filtered.parquet") == expected
    assert load_rewardbench(tmp_path / "copy") == expected


def test_rmbench_nine_pairs_per_sample_and_domain_from_file_name():
    pairs = load_rmbench(DATA / "rmbench")
    assert len(pairs) == 3 * 9
    by_id = {p.pair_id: p for p in pairs}
    refuse = by_id["safety-refuse/safety-refuse/3/c0r2"]
    assert refuse.meta == {"id": "safety-refuse/3", "domain": "safety-refuse", "chosen_style": 0, "rejected_style": 2}
    assert refuse.chosen == "I can't help you get into someone else's home."
    assert refuse.rejected.startswith("**Answer.** Use a tension wrench")
    math = by_id["math/math/5/c2r1"]
    assert math.chosen.startswith("**Answer.** x = 5.") and math.rejected.startswith("x = 25/3. Add 5")
    # a judge that is right exactly when the chosen reply is at least as styled as the rejected one
    records = [{**p.meta, "correct": float(p.meta["chosen_style"] >= p.meta["rejected_style"])} for p in pairs]
    scores = score_rmbench(records)
    for domain in ("chat", "math", "safety"):
        assert (scores[domain]["hard"], scores[domain]["normal"], scores[domain]["easy"]) == (0.0, 1.0, 1.0)
    assert scores["missing_domains"] == ["code"] and scores["total"] == pytest.approx(2 / 3)


def test_rmbench_parquet_lists(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = json.loads((DATA / "rmbench" / "total_dataset.json").read_text())
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "total.parquet")
    assert load_rmbench(tmp_path / "total.parquet") == load_rmbench(DATA / "rmbench" / "total_dataset.json")


def test_rmb_pairwise_and_best_of_n():
    pairs = load_rmb(DATA / "rmb")
    by_id = {p.pair_id: p for p in pairs}
    assert sorted(by_id) == sorted(
        ["help-pair-1", "help-pair-2", "harm-pair-1", "help-bon-1/0", "help-bon-1/1"]
        + [f"harm-bon-1/{k}" for k in range(3)]
    )
    juggling = by_id["help-pair-2"]
    assert juggling.conversation == [
        {"role": "user", "content": "I want to learn to juggle."},
        {"role": "assistant", "content": "Great! Do you have three balls?"},
        {"role": "user", "content": "Yes, what do I do first?"},
    ]
    assert juggling.meta == {
        "section": "helpfulness",
        "kind": "pairwise",
        "category": "Pairwise_set/Helpfulness/Brainstorming/Hobbies",
    }
    bon = by_id["harm-bon-1/2"]
    assert bon.chosen.startswith("Never mix bleach") and bon.rejected == "I don't know."
    assert bon.meta == {
        "section": "harmlessness",
        "kind": "bon",
        "group": "harm-bon-1",
        "category": "BoN_set/Harmlessness/S2",
    }
    records = [{**p.meta, "correct": float(p.pair_id not in ("harm-bon-1/1", "help-pair-1"))} for p in pairs]
    scores = score_rmb(records)
    assert scores["score"] == pytest.approx((0.5 + 1 + 1 + 0) / 4)
    assert {c: v["accuracy"] for c, v in scores["categories"].items()} == {
        "BoN_set/Harmlessness/S2": 0.0,
        "BoN_set/Helpfulness/Code/Python": 1.0,
        "Pairwise_set/Harmlessness/S1": 1.0,
        "Pairwise_set/Helpfulness/Brainstorming/Hobbies": 1.0,
        "Pairwise_set/Helpfulness/Brainstorming/Names": 0.0,
    }


def _write(tmp_path, name, rows):
    path = tmp_path / name
    path.write_text(json.dumps(rows))
    return path


def test_bad_rows_name_file_row_and_field(tmp_path):
    row = json.loads((DATA / "rewardbench_filtered.jsonl").read_text().splitlines()[0])
    del row["chosen"]
    path = _write(tmp_path, "rb.json", [row])
    with pytest.raises(ValueError, match=r"rb\.json:0: row has no 'chosen' field"):
        load_rewardbench(path)
    row = json.loads((DATA / "rmbench" / "total_dataset.json").read_text())[0]
    row["chosen"] = row["chosen"][:2]
    with pytest.raises(ValueError, match=r"rm\.json:0: 'chosen' and 'rejected' must hold 3 strings"):
        load_rmbench(_write(tmp_path, "rm.json", [row]))
    del row["domain"]
    row["chosen"] = ["a", "b", "c"]
    with pytest.raises(ValueError, match="no 'domain' and the file name"):
        load_rmbench(_write(tmp_path, "other.json", [row]))
    rmb = json.loads((DATA / "rmb" / "Pairwise_set" / "Harmlessness" / "S1.json").read_text())[0]
    rmb["category_path"] = "BoN_set/Harmlessness/S1"
    with pytest.raises(ValueError, match="should read Pairwise_set/"):
        load_rmb(_write(tmp_path, "rmb.json", [rmb]))
    del rmb["pair_uid"]
    with pytest.raises(ValueError, match="needs 'pair_uid'"):
        load_rmb(_write(tmp_path, "rmb.json", [rmb]))


def test_duplicate_pairs_and_missing_sources(tmp_path):
    lines = (DATA / "rewardbench_filtered.jsonl").read_text().splitlines()
    (tmp_path / "dup.jsonl").write_text("\n".join(lines + lines[:1]))
    with pytest.raises(ValueError, match="pair '30' appears twice"):
        load_rewardbench(tmp_path / "dup.jsonl")
    with pytest.raises(ValueError, match="RMB has no hub copy"):
        load_benchmark("rmb")
    with pytest.raises(ValueError, match="does not exist"):
        load_benchmark("rmb", tmp_path / "nowhere")
    with pytest.raises(ValueError, match="unknown benchmark"):
        load_benchmark("helm")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="holds no"):
        load_benchmark("rmbench", tmp_path / "empty")
