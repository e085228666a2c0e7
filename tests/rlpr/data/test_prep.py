"""Data preparation: every dataset from a small local file with its real column names, into verl rows."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from harness.rows import write_rows
from rlpr.data.prep import DATASETS, EMPTY_ANSWER, EMPTY_QUESTION, load_source, prepare_rows
from rlpr.data.prompts import R1_SYSTEM_PROMPT
from rlpr.evaluation.benchmarks import BENCHMARKS
from rlpr.evaluation.validation import compute_score

DATA = Path(__file__).parent
REPO = Path(__file__).parents[3]
FILES = {
    "train": "rlpr_train.parquet",
    "MMLU-Pro": "mmlu_pro.jsonl",
    "GPQA-diamond": "gpqa_diamond.parquet",
    "TheoremQA": "theoremqa.json",
    "WebInstruct-verified": "webinstruct_verified_mc.jsonl",  # the paper's multiple-choice variant (the default)
    "MATH-500": "math500.jsonl",
    "Minerva": "minerva.jsonl",
    "AIME2024": "aime2024.parquet",
}


def _prepare(name, **kw):
    return prepare_rows(name, load_source(str(DATA / FILES[name])), **kw)


def test_every_benchmark_has_a_dataset_spec_and_a_fixture():
    assert set(DATASETS) == set(BENCHMARKS) | {"train"} == set(FILES)


@pytest.mark.parametrize("name", sorted(BENCHMARKS))
def test_benchmark_rows_are_verl_rows_one_per_question(name):
    rows, report = _prepare(name)
    assert report.rows_out == len(rows) == report.questions and report.repeat == 1
    assert report.rows_in == report.questions + sum(report.dropped.values())
    for row in rows:
        assert set(row) == {"data_source", "prompt", "ability", "reward_model", "extra_info"}
        assert row["data_source"] == name and row["ability"] == BENCHMARKS[name].domain
        assert row["reward_model"]["style"] == "rule" and row["reward_model"]["ground_truth"].strip()
        assert row["prompt"] == [
            {"role": "system", "content": R1_SYSTEM_PROMPT},
            {"role": "user", "content": row["extra_info"]["question"]},
        ]
        assert row["extra_info"]["sample"] == 0
    assert len({json.dumps(r["prompt"]) for r in rows}) == len(rows)


@pytest.mark.parametrize("name", ["GPQA-diamond", "MATH-500"])
def test_repeat_writes_k_copies_of_each_question(name):
    k = BENCHMARKS[name].k
    rows, report = _prepare(name, repeat=k)
    assert report.rows_out == len(rows) == report.questions * k and report.repeat == k
    assert [r["extra_info"]["sample"] for r in rows[:k]] == list(range(k))
    # the k copies of one question are identical apart from the sample number
    first = [dict(r, extra_info={**r["extra_info"], "sample": 0}) for r in rows[:k]]
    assert all(r == first[0] for r in first)


def test_mmlu_pro_options_are_lettered_and_the_answer_is_the_letter():
    rows, report = _prepare("MMLU-Pro", repeat=1)
    assert report.dropped == {EMPTY_QUESTION: 1}
    q = rows[1]["extra_info"]["question"]
    assert q.startswith("Which planet is known as the red planet?\n\nOptions:\nA. Venus\nB. Jupiter\nC. Mars\n")
    assert q.endswith("J. Moon")
    assert rows[1]["reward_model"]["ground_truth"] == "C" and rows[1]["extra_info"]["answer_type"] == "choice"


def test_gpqa_shuffle_is_seeded_and_the_letter_follows_the_correct_answer():
    rows, _ = _prepare("GPQA-diamond", repeat=1, seed=3)
    again, _ = _prepare("GPQA-diamond", repeat=1, seed=3)
    assert rows == again
    for row, correct in zip(rows, ["Photon", "7"], strict=True):
        letter = row["reward_model"]["ground_truth"]
        assert f"\n{letter}. {correct}\n" in row["extra_info"]["question"] + "\n"
    seeds = {_prepare("GPQA-diamond", repeat=1, seed=s)[0][0]["reward_model"]["ground_truth"] for s in range(12)}
    assert len(seeds) > 1  # the correct answer is not always in the same place


def test_theoremqa_answers_become_text_and_empty_answers_are_dropped():
    rows, report = _prepare("TheoremQA", repeat=1)
    assert report.dropped == {EMPTY_ANSWER: 1}
    assert [(r["reward_model"]["ground_truth"], r["extra_info"]["answer_type"]) for r in rows] == [
        ("12", "math"),
        ("True", "text"),
        ("[1, 2]", "math"),
    ]


def test_webinstruct_free_variant_answer_types():
    rows, report = prepare_rows(
        "WebInstruct-verified", load_source(str(DATA / "webinstruct_verified.jsonl")), repeat=1, variant="free"
    )
    assert [r["extra_info"]["answer_type"] for r in rows] == ["text", "math"] and report.variant == "free"


def test_webinstruct_is_multiple_choice_a_to_d_by_default():
    import asyncio

    rows, report = _prepare("WebInstruct-verified", repeat=1)
    assert report.variant == "choice" and report.dropped == {"answer_not_an_option": 1}
    assert [r["reward_model"]["ground_truth"] for r in rows] == ["B", "C"]  # a letter, and an option's text
    assert {r["extra_info"]["answer_type"] for r in rows} == {"choice"}
    assert rows[0]["extra_info"]["question"].endswith("\n\nOptions:\nA. Joule\nB. Newton\nC. Watt\nD. Pascal")
    row = rows[0]

    def acc(answer):
        response = f"<think>t</think> <answer>{answer}</answer>"
        out = compute_score(row["data_source"], response, row["reward_model"]["ground_truth"], row["extra_info"])
        return asyncio.run(out)["acc"]

    assert (acc("B"), acc("Newton"), acc("(B)"), acc("A"), acc("Joule")) == (1.0, 1.0, 1.0, 0.0, 0.0)
    five = [{"question": "q", "options": list("abcde"), "answer": "A"}]
    assert prepare_rows("WebInstruct-verified", five)[1].dropped == {"bad_options": 1}
    free_form = load_source(str(DATA / "webinstruct_verified.jsonl"))
    with pytest.raises(ValueError, match=r"lacks the columns \['options'\].*--webinstruct free"):
        prepare_rows("WebInstruct-verified", free_form)
    with pytest.raises(ValueError, match="variant 'free' is only for WebInstruct-verified"):
        prepare_rows("MATH-500", free_form, variant="free")


def _mmlu_rows(n):
    return [{"question_id": 5000 + i, "question": f"q{i}", "options": ["x", "y"], "answer": "A"} for i in range(n)]


def test_mmlu_pro_is_the_seeded_1000_question_subset_by_default():
    rows, report = prepare_rows("MMLU-Pro", _mmlu_rows(1500), repeat=1)
    ids = [int(r["extra_info"]["question"].split("\n")[0][1:]) + 5000 for r in rows]
    assert report.questions == 1000 and report.subset["size"] == 1000 and report.subset["of"] == 1500
    assert report.subset["seed"] == 0 and report.subset["ids"] == ids == sorted(ids)  # the ids are the question_id
    assert prepare_rows("MMLU-Pro", _mmlu_rows(1500), repeat=1)[1].subset == report.subset  # reproducible
    assert prepare_rows("MMLU-Pro", _mmlu_rows(1500), repeat=1, seed=1)[1].subset["ids"] != ids
    full_rows, full = prepare_rows("MMLU-Pro", _mmlu_rows(1500), repeat=1, full=True)
    assert full.questions == 1500 == len(full_rows) and full.subset is None
    assert prepare_rows("MMLU-Pro", _mmlu_rows(1500), repeat=1, max_questions=10)[1].questions == 10
    assert prepare_rows("MMLU-Pro", _mmlu_rows(999), repeat=1)[1].subset is None  # fewer than 1000: all kept


def test_script_records_the_mmlu_pro_subset_in_the_report(tmp_path):
    source = tmp_path / "mmlu.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in _mmlu_rows(1200)))
    assert _script("--dataset", "MMLU-Pro", "--source", str(source), "--output", str(tmp_path / "a")).returncode == 0
    report = json.loads((tmp_path / "a" / "MMLU-Pro_Avg2.parquet.report.json").read_text())
    assert report["subset"]["seed"] == 0 and len(report["subset"]["ids"]) == 1000 == report["questions"]
    assert report["rows_out"] == 1000  # one row per question: validation samples k = 2 per row (the file name)
    done = _script("--dataset", "MMLU-Pro", "--full", "--source", str(source), "--output", str(tmp_path / "b"))
    assert done.returncode == 0, done.stderr
    report = json.loads((tmp_path / "b" / "MMLU-Pro_Avg2.parquet.report.json").read_text())
    assert report["subset"] is None and report["questions"] == 1200


def test_aime_reads_the_capitalised_columns_and_integer_answers():
    rows, _ = _prepare("AIME2024", repeat=1)
    assert [r["reward_model"]["ground_truth"] for r in rows] == ["24", "42"]


def test_train_rows_keep_source_and_metadata_and_get_our_prompt():
    rows, report = _prepare("train")
    assert report.repeat == 1 and report.dropped == {EMPTY_ANSWER: 1} and len(rows) == 2
    row = rows[1]
    assert row["prompt"][0]["content"] == R1_SYSTEM_PROMPT
    assert row["prompt"][1]["content"] == "A car travels 120 km in 2 h. What is its average speed in km/h?"
    assert row["data_source"] == "WebInstruct-verified" and row["ability"] == "Physics"
    assert row["extra_info"]["index"] == 1 and row["extra_info"]["split"] == "test"
    assert row["reward_model"] == {"style": "rule", "ground_truth": "60"}


def test_nothink_format_has_no_system_prompt_and_asks_for_the_letter_on_multiple_choice():
    mc, _ = _prepare("MMLU-Pro", fmt="R1_nothink", repeat=1)
    free, _ = _prepare("MATH-500", fmt="R1_nothink", repeat=1)
    assert [m["role"] for m in mc[0]["prompt"]] == ["user"]
    assert "letter" in mc[0]["prompt"][0]["content"] and "letter" not in free[0]["prompt"][0]["content"]
    assert mc[0]["prompt"][0]["content"].startswith(mc[0]["extra_info"]["question"])


def test_max_questions_takes_a_seeded_subset_in_order():
    rows = [{"problem": f"q{i}", "answer": str(i)} for i in range(50)]
    out, report = prepare_rows("MATH-500", rows, repeat=1, max_questions=10, seed=1)
    idx = [r["extra_info"]["index"] for r in out]
    assert len(idx) == 10 == report.questions and idx == sorted(idx)
    assert idx == [
        r["extra_info"]["index"] for r in prepare_rows("MATH-500", rows, repeat=1, max_questions=10, seed=1)[0]
    ]


def test_prepared_references_grade_as_correct_answers():
    """Round trip: each benchmark's reference, given back as the answer, scores acc 1 under validation."""
    import asyncio

    for name in BENCHMARKS:
        rows, _ = _prepare(name, repeat=1)
        for row in rows:
            response = f"<think>ok</think> <answer>{row['reward_model']['ground_truth']}</answer>"
            out = asyncio.run(
                compute_score(row["data_source"], response, row["reward_model"]["ground_truth"], row["extra_info"])
            )
            assert out["acc"] == 1.0, (name, row)


@pytest.mark.parametrize(
    ("name", "rows", "match"),
    [
        ("MATH-500", [{"question_text": "q", "answer": "1"}], "columns"),
        ("MMLU-Pro", [{"question": "q", "options": ["a", "b"], "answer": "E"}], "not one of its 2 options"),
        ("MMLU-Pro", [{"question": "q", "options": ["a"], "answer": "A"}], "2 to 10 options"),
        ("NoSuchSet", [], "unknown dataset"),
    ],
)
def test_bad_input_is_named(name, rows, match):
    with pytest.raises(ValueError, match=match):
        prepare_rows(name, rows)


def test_benchmark_files_concatenate_as_verl_reads_them(tmp_path):
    """verl reads each val file with datasets and concatenates them: the column types must agree across files."""
    import datasets

    paths = []
    for name in BENCHMARKS:
        rows, _ = _prepare(name, repeat=1)
        paths.append(str(write_rows(rows, tmp_path / f"{name}.parquet")))
    parts = [datasets.load_dataset("parquet", data_files=p)["train"] for p in paths]
    merged = datasets.concatenate_datasets(parts)
    assert len(merged) == sum(len(p) for p in parts)
    assert set(merged.unique("data_source")) == set(BENCHMARKS)


def test_missing_local_file_is_an_error(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_source(str(tmp_path / "nope.jsonl"))


def test_script_writes_parquet_and_report(tmp_path):
    cmd = [
        sys.executable,
        str(REPO / "scripts" / "prepare_rlpr_data.py"),
        "--dataset",
        "Minerva",
        "--source",
        str(DATA / FILES["Minerva"]),
        "--output",
        str(tmp_path),
        "--format",
        "R1_nothink",
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    table = pq.read_table(tmp_path / "Minerva_Avg4.parquet").to_pylist()
    assert len(table) == 2 and table[0]["prompt"][0]["role"] == "user"  # one row per question (k = 4 sampled)
    assert table[0]["reward_model"]["ground_truth"] == "2.5"
    report = json.loads((tmp_path / "Minerva_Avg4.parquet.report.json").read_text())
    assert report["questions"] == 2 and report["rows_out"] == 2 and report["dropped"] == {}


# --- bad input: named errors or counted drops, never a silent wrong result -------------------------------------


def test_all_missing_columns_are_named_at_once():
    with pytest.raises(ValueError) as error:
        prepare_rows("GPQA-diamond", [{"Question": "q", "Incorrect Answer 1": "x"}], source="gpqa.jsonl")
    message = str(error.value)
    assert "gpqa.jsonl" in message
    assert "['Correct Answer', 'Incorrect Answer 2', 'Incorrect Answer 3']" in message
    assert "needs: Question, Correct Answer, Incorrect Answer 1" in message


def test_malformed_options_and_rows_are_counted_drops():
    good = {"question": "q", "options": ["a", "b", "c"], "answer": "B"}
    rows = [good, {**good, "options": None}, {**good, "options": "abc"}, None, {**good, "options": [1, 2]}]
    out, report = prepare_rows("MMLU-Pro", rows, repeat=1)
    assert [r["reward_model"]["ground_truth"] for r in out] == ["B"]  # "abc" no longer becomes options a, b, c
    assert report.dropped == {"bad_options": 3, "not_a_row": 1}
    train = [{"prompt": None, "reward_model": {"ground_truth": "1"}}, {"prompt": [], "reward_model": None}]
    assert prepare_rows("train", train)[1].dropped == {EMPTY_QUESTION: 2}


@pytest.mark.parametrize(
    ("content", "match"),
    [(b"", "not valid JSON"), (b'[{"problem": "q", ', "not valid JSON"), (b'[{"problem": "caf\xe9"}]', "UTF-8")],
)
def test_broken_json_sources_are_named(tmp_path, content, match):
    path = tmp_path / "src.json"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=rf"src.json is {match}|src.json.*{match}"):
        load_source(str(path))


def test_bad_jsonl_lines_are_named(tmp_path):
    path = tmp_path / "src.jsonl"
    path.write_bytes(b'{"problem": "q", "answer": "1"}\n{"problem": "\xff"}\n')
    with pytest.raises(ValueError, match="src.jsonl line 2 is not valid UTF-8"):
        load_source(str(path))


def _script(*args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, str(REPO / "scripts" / "prepare_rlpr_data.py"), *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)


def test_script_output_is_checked_first(tmp_path):
    source = str(DATA / FILES["Minerva"])
    # a file-like name that is not .parquet used to become a directory x.json/
    done = _script("--dataset", "Minerva", "--source", source, "--output", str(tmp_path / "x.json"))
    assert done.returncode == 2 and "expected a .parquet file or a directory" in done.stderr
    assert not (tmp_path / "x.json").exists()
    blocker = tmp_path / "file"
    blocker.write_text("")  # a folder cannot be made under a file: unwritable, found before reading the source
    done = _script("--dataset", "Minerva", "--source", str(tmp_path / "missing.jsonl"), "--output", str(blocker / "o"))
    assert done.returncode == 1 and "cannot write the output" in done.stderr and "missing.jsonl" not in done.stderr


def test_script_benchmarks_from_the_hub_need_the_free_webinstruct_variant(tmp_path):
    done = _script("--dataset", "benchmarks", "--output", str(tmp_path / "o"))
    assert done.returncode == 2 and "--webinstruct free" in done.stderr and not (tmp_path / "o").exists()


def test_help_lists_the_columns_of_every_dataset():
    done = _script("--help")
    assert done.returncode == 0
    for name, spec in DATASETS.items():
        assert f"{name}" in done.stdout and spec.describe_columns() in done.stdout
