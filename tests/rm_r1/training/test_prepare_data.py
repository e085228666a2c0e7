"""scripts/prepare_rm_r1_data.py on small local files with the real column names (tests/rm_r1/training/data/)."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest

from rm_r1.training.data import (
    CODE_PREFERENCE,
    MATH_STEP_DPO,
    SKYWORK,
    balanced_swaps,
    code_selection,
    held_out,
    pair_key,
    sft_pair_keys,
)

ROOT = Path(__file__).resolve().parents[3]
DATA = Path(__file__).parent / "data"
SCRIPT = ROOT / "scripts" / "prepare_rm_r1_data.py"
SOURCES = [
    "--skywork",
    str(DATA / "skywork.jsonl"),
    "--code",
    str(DATA / "code.jsonl"),
    "--math",
    str(DATA / "math.parquet"),
]


def _script():
    spec = importlib.util.spec_from_file_location("prepare_rm_r1_data", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def prepare():
    return _script().main


def _rows(path: Path) -> list[dict]:
    return pd.read_parquet(path).to_dict("records") if path.exists() else []


def _valid_pairs() -> dict[str, tuple[str, str]]:
    """The kept pairs, read from the fixture files independently of rm_r1.training.data: last user turn -> (chosen,
    rejected)."""
    pairs = {}
    for line in (DATA / "skywork.jsonl").read_text().splitlines():
        row = json.loads(line)
        pairs[row["chosen"][-2]["content"]] = (row["chosen"][-1]["content"], row["rejected"][-1]["content"])
    for line in (DATA / "code.jsonl").read_text().splitlines():
        row = json.loads(line)
        pairs[row["input"]] = (row["accepted"], row["rejected"])
    for row in pd.read_parquet(DATA / "math.parquet").to_dict("records"):
        steps = row["initial_reason_steps"]
        pairs[row["prompt"]] = (steps + row["full_chosen"], steps + row["full_rejected"])
    bad = {
        "Write a haiku about rain.",
        "Say hi.",
        "What is 3*3?",
        "Capital of France?",
        "Sum a list xs.",
        "Solve x + 1 = 3.",
    }
    return {q: p for q, p in pairs.items() if q not in bad}


def _shown(user_text: str, side: str, reply: str) -> bool:
    return (
        f"[Chatbot {side}'s reply]\n{reply}\n[End of Chatbot {side}'s reply]" in user_text
        or f"Chatbot {side}: {reply}\n[End of the conversation with Chatbot {side}]" in user_text
    )


def test_rl_rows_counts_labels_and_replies(prepare, small_tokenizer, tmp_path, capsys):
    report = prepare(
        [
            "--output-dir",
            str(tmp_path),
            "--tokenizer",
            "unused",
            "--family",
            "instruct",
            "--val-size",
            "3",
            "--seed",
            "7",
            *SOURCES,
        ],
        tokenizer=small_tokenizer,
    )
    assert report.kept == {SKYWORK: 5, CODE_PREFERENCE: 4, MATH_STEP_DPO: 3}
    assert report.skipped == {
        SKYWORK: {
            "origin magpie_ultra": 1,
            "empty reply": 1,
            "chosen identical to rejected": 1,
            "chosen and rejected contexts differ": 1,
        },
        CODE_PREFERENCE: {"empty reply": 1},
        MATH_STEP_DPO: {"chosen identical to rejected": 1},
    }
    assert report.skipped_rows[CODE_PREFERENCE] == {"empty reply": [2]}  # row numbers of the files
    assert report.skipped_rows[SKYWORK] == {
        "origin magpie_ultra": [1],
        "empty reply": [3],
        "chosen identical to rejected": [4],
        "chosen and rejected contexts differ": [5],
    }
    assert report.skipped_rows[MATH_STEP_DPO] == {"chosen identical to rejected": [2]}
    printed = capsys.readouterr().out
    assert "origin magpie_ultra: 1, e.g. rows [1]" in printed and "labels" in printed

    train, val = _rows(tmp_path / "train.parquet"), _rows(tmp_path / "val.parquet")
    assert (len(train), len(val)) == (9, 3)
    pairs = _valid_pairs()
    seen = []
    for row in train + val:
        system, user = row["prompt"]
        assert system["role"] == "system" and user["role"] == "user"
        (question,) = [q for q in pairs if q in user["content"]]
        seen.append(question)
        chosen, rejected = pairs[question]
        label = row["reward_model"]["ground_truth"]
        chosen_side, rejected_side = ("A", "B") if label == "model_a" else ("B", "A")
        assert _shown(user["content"], chosen_side, chosen) and _shown(user["content"], rejected_side, rejected)
        assert row["extra_info"]["swapped"] == (label == "model_b")
        assert row["ability"] == "preference" and row["reward_model"]["style"] == "rule"
    assert sorted(seen) == sorted(pairs)  # every kept pair exactly once, train and val disjoint
    assert {r["extra_info"]["split"] for r in train} == {"train"} and {r["extra_info"]["split"] for r in val} == {"val"}
    for rows in (train, val):
        labels = Counter(r["reward_model"]["ground_truth"] for r in rows)
        assert abs(labels["model_a"] - labels["model_b"]) <= 1
        for source in {r["data_source"] for r in rows}:
            per_source = Counter(r["reward_model"]["ground_truth"] for r in rows if r["data_source"] == source)
            assert abs(per_source["model_a"] - per_source["model_b"]) <= 1


def test_same_seed_same_files_other_seed_other_orders(prepare, small_tokenizer, tmp_path):
    def labels(seed, out):
        prepare(
            [
                "--output-dir",
                str(out),
                "--tokenizer",
                "unused",
                "--family",
                "reasoning",
                "--val-size",
                "0",
                "--seed",
                str(seed),
                *SOURCES,
            ],
            tokenizer=small_tokenizer,
        )
        return [
            (r["extra_info"]["source_index"], r["data_source"], r["reward_model"]["ground_truth"])
            for r in _rows(out / "train.parquet")
        ]

    first, again = labels(0, tmp_path / "a"), labels(0, tmp_path / "b")
    assert first == again
    assert (tmp_path / "a" / "train.parquet").read_bytes() == (tmp_path / "b" / "train.parquet").read_bytes()
    assert not (tmp_path / "a" / "val.parquet").exists()
    others = [labels(seed, tmp_path / f"s{seed}") for seed in (1, 2, 3)]
    assert any(other != first for other in others)
    assert all(sorted(k[:2] for k in other) == sorted(k[:2] for k in first) for other in others)  # same pairs
    row = _rows(tmp_path / "a" / "train.parquet")[0]
    assert [m["role"] for m in row["prompt"]] == ["user"]  # reasoning family


def test_both_orders(prepare, small_tokenizer, tmp_path):
    prepare(
        [
            "--output-dir",
            str(tmp_path),
            "--tokenizer",
            "unused",
            "--family",
            "instruct",
            "--val-size",
            "2",
            "--both-orders",
            *SOURCES,
        ],
        tokenizer=small_tokenizer,
    )
    for split, pairs in (("train", 10), ("val", 2)):
        rows = _rows(tmp_path / f"{split}.parquet")
        assert len(rows) == 2 * pairs
        assert [r["extra_info"]["index"] for r in rows] == list(range(2 * pairs))
        keys = Counter((r["data_source"], r["extra_info"]["source_index"]) for r in rows)
        assert set(keys.values()) == {2}
        by_key = {}
        for r in rows:
            by_key.setdefault((r["data_source"], r["extra_info"]["source_index"]), set()).add(
                r["reward_model"]["ground_truth"]
            )
        assert all(v == {"model_a", "model_b"} for v in by_key.values())


def test_prompt_budget_counts_tokens_of_the_rendered_chat_template(prepare, small_tokenizer, tmp_path):
    prepare(
        [
            "--output-dir",
            str(tmp_path / "all"),
            "--tokenizer",
            "unused",
            "--family",
            "instruct",
            "--val-size",
            "0",
            *SOURCES,
        ],
        tokenizer=small_tokenizer,
    )
    rows = _rows(tmp_path / "all" / "train.parquet")
    lengths = [
        len(
            small_tokenizer.apply_chat_template(
                list(r["prompt"]), tokenize=True, add_generation_prompt=True, return_dict=True
            )["input_ids"]
        )
        for r in rows
    ]
    budget = sorted(lengths)[len(lengths) // 2]
    report = prepare(
        [
            "--output-dir",
            str(tmp_path / "cut"),
            "--tokenizer",
            "unused",
            "--family",
            "instruct",
            "--val-size",
            "0",
            "--prompt-budget",
            str(budget),
            *SOURCES,
        ],
        tokenizer=small_tokenizer,
    )
    kept = _rows(tmp_path / "cut" / "train.parquet")
    expected_drops = Counter(r["data_source"] for r, n in zip(rows, lengths) if n > budget)
    assert len(kept) == sum(n <= budget for n in lengths) < len(rows)
    assert report.over_budget == {f"train/{source}": n for source, n in expected_drops.items()}


def test_rl_parquet_loads_in_verls_rl_dataset(prepare, small_tokenizer, tmp_path):
    from omegaconf import OmegaConf
    from verl.utils.dataset.rl_dataset import RLHFDataset

    prepare(
        ["--output-dir", str(tmp_path), "--tokenizer", "unused", "--family", "instruct", "--val-size", "0", *SOURCES],
        tokenizer=small_tokenizer,
    )
    config = OmegaConf.create(
        {
            "max_prompt_length": 4096,
            "filter_overlong_prompts": True,
            "filter_overlong_prompts_workers": 1,
            "cache_dir": str(tmp_path / "cache"),
        }
    )
    dataset = RLHFDataset(str(tmp_path / "train.parquet"), small_tokenizer, config)
    assert len(dataset) == 12
    item = dataset[0]
    assert item["data_source"] == SKYWORK
    assert item["reward_model"]["ground_truth"] in ("model_a", "model_b")
    assert [m["role"] for m in item["raw_prompt"]] == ["system", "user"]


def test_sft_rows_train_on_the_trace_only_in_verls_sft_dataset(prepare, small_tokenizer, tmp_path):
    from omegaconf import OmegaConf
    from verl.utils.dataset.multiturn_sft_dataset import MultiTurnSFTDataset

    report = prepare(
        [
            "--output-dir",
            str(tmp_path),
            "--tokenizer",
            "unused",
            "--family",
            "instruct",
            "--val-size",
            "0",
            "--sft",
            str(DATA / "sft.jsonl"),
        ],
        tokenizer=small_tokenizer,
    )
    assert report.skipped[str(DATA / "sft.jsonl")] == {
        "trace verdict disagrees with label": 1,
        "trace does not end with one verdict tag": 1,
        "unknown label": 1,
    }
    traces = [json.loads(line)["trace"] for line in (DATA / "sft.jsonl").read_text().splitlines()]
    kept = [traces[0], traces[1], traces[5]]
    config = OmegaConf.create(
        {"max_length": 2048, "truncation": "error", "pad_mode": "right", "messages_key": "messages"}
    )
    dataset = MultiTurnSFTDataset(str(tmp_path / "train.parquet"), small_tokenizer, config)
    assert len(dataset) == 3
    for i, trace in enumerate(kept):
        item = dataset[i]
        trained = item["input_ids"][item["loss_mask"].bool()]
        assert small_tokenizer.decode(trained) == trace + "<|im_end|>\n"
        assert "You are an impartial judge." in small_tokenizer.decode(item["input_ids"])


def test_bad_inputs_are_errors_naming_them(prepare, small_tokenizer, tmp_path):
    broken = tmp_path / "code_broken.jsonl"
    broken.write_text(json.dumps({"question": "q", "accepted": "a", "rejected": "b"}) + "\n")
    expected = r"missing columns \['input'\]; expected the columns \['input', 'accepted', 'rejected'\]"
    with pytest.raises(ValueError, match=expected):
        prepare(
            [
                "--output-dir",
                str(tmp_path),
                "--tokenizer",
                "unused",
                "--family",
                "instruct",
                "--sources",
                "code",
                "--code",
                str(broken),
            ],
            tokenizer=small_tokenizer,
        )
    with pytest.raises(ValueError, match="nothere.parquet"):
        prepare(
            [
                "--output-dir",
                str(tmp_path),
                "--tokenizer",
                "unused",
                "--family",
                "instruct",
                "--sources",
                "math",
                "--math",
                str(tmp_path / "nothere.parquet"),
            ],
            tokenizer=small_tokenizer,
        )
    with pytest.raises(SystemExit):
        prepare(["--output-dir", str(tmp_path), "--tokenizer", "x", "--family", "auto"], tokenizer=small_tokenizer)
    with pytest.raises(SystemExit):
        prepare(
            ["--output-dir", str(tmp_path), "--tokenizer", "x", "--family", "instruct", "--sources", "hh"],
            tokenizer=small_tokenizer,
        )


def test_balanced_swaps_and_held_out():
    for count in range(0, 9):
        for odd in (False, True):
            flags = balanced_swaps(count, "s", odd)
            assert len(flags) == count and sum(flags) == count // 2 + (count % 2 if odd else 0)
            assert flags == balanced_swaps(count, "s", odd)
    assert len({tuple(balanced_swaps(20, seed)) for seed in range(5)}) > 1
    assert len(held_out(200, 0.1, 0)) == 20 and len(held_out(200, 7, 0)) == 7 and held_out(200, 0, 0) == set()
    assert held_out(200, 7, 1) == held_out(200, 7, 1) and held_out(0, 7, 1) == set()
    for bad in (-1, 2.5, 200):
        with pytest.raises(ValueError, match="val_size"):
            held_out(200, bad, 0)


@pytest.mark.slow
def test_command_line_help_and_run(small_tokenizer, tmp_path):
    help_text = subprocess.run(
        [sys.executable, str(SCRIPT), "--help"], check=True, capture_output=True, text=True
    ).stdout
    for option in ("--family", "--both-orders", "--prompt-budget", "--sft", "--val-size", "--skywork"):
        assert option in help_text
    small_tokenizer.save_pretrained(tmp_path / "tok")
    done = subprocess.run(
        [
            sys.executable,
            str(SCRIPT),
            "--output-dir",
            str(tmp_path / "out"),
            "--tokenizer",
            str(tmp_path / "tok"),
            "--family",
            "instruct",
            "--sources",
            "code",
            "--code",
            str(DATA / "code.jsonl"),
            "--val-size",
            "1",
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert done.returncode == 0, done.stderr
    assert "Vezora/Code-Preference-Pairs: 4 kept; skipped 1 (empty reply: 1, e.g. rows [" in done.stdout
    assert len(_rows(tmp_path / "out" / "train.parquet")) == 3


def test_code_selection_is_datasets_shuffle_then_head():
    import datasets

    table = datasets.Dataset.from_dict({"input": [f"q{i}" for i in range(50)]})
    expected = table.shuffle(seed=42).select(range(8))["input"]
    assert [table[i]["input"] for i in code_selection(len(table), seed=42, limit=8)] == expected
    assert len(code_selection(5)) == 5 and sorted(code_selection(5)) == list(range(5))


# --- bad input and small inputs ----------------------------------------------------------------------------------


def _args(tmp_path, *extra: str) -> list[str]:
    return ["--output-dir", str(tmp_path / "out"), "--tokenizer", "unused", "--family", "instruct", *extra]


def test_a_small_input_still_gets_a_validation_pair(prepare, small_tokenizer, tmp_path):
    # 1% of a handful of pairs used to round to 0: no val.parquet although the GRPO launcher needs one
    args = _args(tmp_path, "--sources", "code", "--code", str(DATA / "code.jsonl"))
    report = prepare(args, tokenizer=small_tokenizer)
    assert report.rows["val"] == 1 and len(_rows(tmp_path / "out" / "val.parquet")) == 1
    assert held_out(11, 0.01, 0) and len(held_out(11, 0.01, 0)) == 1
    with pytest.raises(ValueError, match="at least 2 pairs"):
        held_out(1, 0.01, 0)


def test_val_size_zero_removes_a_stale_val_file(prepare, small_tokenizer, tmp_path, capsys):
    code = ["--sources", "code", "--code", str(DATA / "code.jsonl")]
    prepare(_args(tmp_path, *code, "--val-size", "1"), tokenizer=small_tokenizer)
    assert (tmp_path / "out" / "val.parquet").exists()
    prepare(_args(tmp_path, *code, "--val-size", "0"), tokenizer=small_tokenizer)
    assert not (tmp_path / "out" / "val.parquet").exists() and len(_rows(tmp_path / "out" / "train.parquet")) == 4
    assert "removed" in capsys.readouterr().out
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["train.parquet"]  # no temporary files left


def test_null_messages_and_rows_are_counted_skips(prepare, small_tokenizer, tmp_path):
    good = json.loads((DATA / "skywork.jsonl").read_text().splitlines()[0])
    null_message = {**good, "chosen": [None, *good["chosen"][1:]]}
    path = tmp_path / "sky.json"
    path.write_text(json.dumps([good, null_message, None, {**good, "rejected": [*good["rejected"][:-1], None]}]))
    report = prepare(
        _args(tmp_path, "--sources", "skywork", "--skywork", str(path), "--val-size", "0"), tokenizer=small_tokenizer
    )
    assert report.skipped[SKYWORK] == {"malformed conversation": 2, "row is not an object": 1}


@pytest.mark.parametrize(
    ("name", "content", "match"),
    [
        ("empty.jsonl", b"", "holds no rows"),
        ("cut.json", b'[{"input": "q", ', "is not valid JSON"),
        ("latin1.jsonl", b'{"input": "caf\xe9"}\n', "line 1 is not valid UTF-8"),
    ],
)
def test_broken_files_are_named(prepare, small_tokenizer, tmp_path, name, content, match):
    (tmp_path / name).write_bytes(content)
    with pytest.raises(ValueError, match=match) as error:
        prepare(_args(tmp_path, "--sources", "code", "--code", str(tmp_path / name)), tokenizer=small_tokenizer)
    assert name in str(error.value)


def test_unwritable_output_is_found_before_any_work(prepare, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    args = ["--output-dir", str(blocker / "out"), "--tokenizer", "unused", "--family", "instruct"]
    with pytest.raises(ValueError, match="cannot write to --output-dir"):
        prepare([*args, "--code", str(tmp_path / "missing.jsonl")], tokenizer=None)  # no tokenizer load, no reading


def test_help_lists_the_input_columns():
    help_text = subprocess.run(
        [sys.executable, str(SCRIPT), "--help"], check=True, capture_output=True, text=True
    ).stdout
    assert "--skywork  chosen, rejected, source" in help_text and "--code     input, accepted, rejected" in help_text
    assert "--sft      conversation, reply_a, reply_b, trace, label" in help_text


# --- the published distillation layout, excluding distilled pairs, the paper's counts --------------------------------

PUBLISHED = DATA / "distill_sft_published.jsonl"


def test_published_distillation_rows_become_sft_examples_as_written(prepare, small_tokenizer, tmp_path):
    from omegaconf import OmegaConf
    from verl.utils.dataset.multiturn_sft_dataset import MultiTurnSFTDataset

    report = prepare(_args(tmp_path, "--val-size", "0", "--sft", str(PUBLISHED)), tokenizer=small_tokenizer)
    assert report.kept[str(PUBLISHED)] == 5
    assert report.skipped[str(PUBLISHED)] == {"trace does not end with one verdict tag": 1}
    published = [json.loads(line) for line in PUBLISHED.read_text().splitlines()]
    kept = [published[i] for i in (0, 1, 2, 3, 5)]
    rows = _rows(tmp_path / "out" / "train.parquet")
    assert [[dict(m) for m in r["messages"]] for r in rows] == [
        r["context_messages"] + [{"role": "assistant", "content": r["winner"]}] for r in kept
    ]
    assert [r["extra_info"]["label"] for r in rows] == ["model_a", "model_b", "model_a", "model_a", "model_a"]
    config = OmegaConf.create(
        {"max_length": 2048, "truncation": "error", "pad_mode": "right", "messages_key": "messages"}
    )
    item = MultiTurnSFTDataset(str(tmp_path / "out" / "train.parquet"), small_tokenizer, config)[1]
    assert small_tokenizer.decode(item["input_ids"][item["loss_mask"].bool()]) == kept[1]["winner"] + "<|im_end|>\n"


def test_published_layout_needs_the_instruct_family_and_a_known_layout(prepare, small_tokenizer, tmp_path):
    with pytest.raises(ValueError, match="published layout.*--family instruct"):
        prepare(
            ["--output-dir", str(tmp_path), "--tokenizer", "unused", "--family", "reasoning", "--sft", str(PUBLISHED)],
            tokenizer=small_tokenizer,
        )
    other = tmp_path / "other.jsonl"
    other.write_text(json.dumps({"messages": [], "winner": "x"}) + "\n")
    with pytest.raises(ValueError, match=r"expected the distillation columns .* or \['context_messages', 'winner'\]"):
        prepare(_args(tmp_path, "--sft", str(other)), tokenizer=small_tokenizer)
    with pytest.raises(SystemExit):
        prepare(_args(tmp_path, "--sft", str(PUBLISHED), "--exclude-sft", str(PUBLISHED)), tokenizer=small_tokenizer)


def test_exclude_sft_removes_the_distilled_pairs_by_content(prepare, small_tokenizer, tmp_path, capsys):
    report = prepare(
        _args(tmp_path, "--val-size", "0", "--exclude-sft", str(PUBLISHED), *SOURCES), tokenizer=small_tokenizer
    )
    # rows 0 and 4 are Skywork pairs (one multi-turn, one whose trace lost its verdict), 1 a code pair shown the
    # other way round with extra spaces, 2 a Math-Step-DPO pair; 3 is in no source, 5 is not in the official layout
    assert report.excluded == {SKYWORK: 2, CODE_PREFERENCE: 1, MATH_STEP_DPO: 1}
    assert report.exclusion == {"sft_pairs": 5, "unreadable": 1, "matched": 4}
    rows = _rows(tmp_path / "out" / "train.parquet")
    assert len(rows) == 12 - 4
    shown = "\n".join(r["prompt"][-1]["content"] for r in rows)
    for gone in ("And an even one?", "Translate 'thank you'", "Reverse a string", "What is 10 / 4?"):
        assert gone not in shown
    assert "Check if n is even." in shown and "How do I boil an egg?" in shown
    assert "removed 4 pairs" in capsys.readouterr().out


def test_exclude_sft_in_the_project_layout(prepare, small_tokenizer, tmp_path):
    sft = tmp_path / "traces.jsonl"
    sft.write_text(
        json.dumps(
            {
                "conversation": [{"role": "user", "content": "Check if  n is even."}],
                "reply_a": "n % 2 == 1",
                "reply_b": "n % 2 == 0",
                "trace": "t",
                "label": "model_b",
            }
        )
        + "\n"
    )
    report = prepare(
        _args(
            tmp_path,
            "--val-size",
            "0",
            "--sources",
            "code",
            "--code",
            str(DATA / "code.jsonl"),
            "--exclude-sft",
            str(sft),
        ),
        tokenizer=small_tokenizer,
    )
    assert report.excluded == {CODE_PREFERENCE: 1} and report.kept[CODE_PREFERENCE] == 4
    assert len(_rows(tmp_path / "out" / "train.parquet")) == 3


def test_pair_key_ignores_order_and_whitespace_but_not_content():
    context = [{"role": "user", "content": "Name a prime."}]
    assert pair_key(context, "Two.", " Seven.\n") == pair_key(
        [{"role": "user", "content": "Name  a prime."}], "Seven.", "Two."
    )
    assert pair_key(context, "Two.", "Seven.") != pair_key(context, "Two.", "Three.")
    assert pair_key(context, "Two.", "Seven.") != pair_key(
        [{"role": "system", "content": "Name a prime."}], "Two.", "Seven."
    )


def test_summary_puts_the_paper_counts_next_to_each_drop_reason(prepare, small_tokenizer, tmp_path, capsys):
    prepare(_args(tmp_path, "--val-size", "0", *SOURCES), tokenizer=small_tokenizer)
    printed = capsys.readouterr().out
    kept_there = "dropped here but kept by the official pipeline"
    assert (
        f"the paper used 54146 pairs of {SKYWORK}; {kept_there}: 3 {{'chosen and rejected contexts differ': 1, "
        "'chosen identical to rejected': 1, 'empty reply': 1}"
    ) in printed
    assert f"the paper used 8000 pairs of {CODE_PREFERENCE}; {kept_there}: 1 {{'empty reply': 1}}" in printed
    assert f"the paper used 10795 pairs of {MATH_STEP_DPO}; {kept_there}: 1" in printed


def test_sft_pair_keys_count_the_rows_they_cannot_read():
    project = [
        {"conversation": None, "reply_a": "a", "reply_b": "b", "trace": "t", "label": "model_a"},
        None,
        {"conversation": "q", "reply_a": 1, "reply_b": "b", "trace": "t", "label": "model_a"},
        {"conversation": "q", "reply_a": "b ", "reply_b": "a", "trace": "t", "label": "model_b"},
    ]
    assert sft_pair_keys(project, "traces") == ({("user: q", ("a", "b"))}, 3)
    published = [json.loads(line) for line in PUBLISHED.read_text().splitlines()]
    broken = [{"context_messages": None, "winner": "w"}, {"context_messages": [{"role": "user"}], "winner": "w"}]
    keys, unreadable = sft_pair_keys(published + broken, "published")
    assert len(keys) == 5 and unreadable == 3
    with pytest.raises(ValueError, match="expected the distillation columns"):
        sft_pair_keys([{"prompt": "q"}], "other")
