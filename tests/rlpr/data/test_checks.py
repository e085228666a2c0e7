"""Data checks: each kind of bad training row is named, then dropped (policy filter) or raised (policy error)."""

from __future__ import annotations

import json
import logging

import pytest

from harness.rows import read_rows, write_rows
from rlpr.data.checks import (
    EMPTY_PROMPT,
    NO_REFERENCE,
    PROMPT_TOO_LONG,
    BadDataError,
    check_files,
    check_rows,
    prompt_lengths,
)

SYSTEM = {"role": "system", "content": "Think, then answer."}


def row(question: str | None = "What is the capital of France?", truth="Paris", **extra):
    prompt = [SYSTEM, {"role": "user", "content": question}] if question is not None else []
    return {
        "data_source": "web",
        "prompt": prompt,
        "ability": "general",
        "reward_model": {"style": "rule", "ground_truth": truth},
        "extra_info": {"index": 0},
        **extra,
    }


def template_length(tokenizer, messages) -> int:
    # verl's RLHFDataset counts a prompt this way: tokenize=True straight from the chat template.
    encoded = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
    return len(encoded["input_ids"] if hasattr(encoded, "keys") else encoded)


@pytest.fixture
def rows():
    return [
        row(),  # 0 good
        row(truth=None),  # 1 no reference
        row(truth=42),  # 2 reference not a string
        {k: v for k, v in row().items() if k != "reward_model"},  # 3 no reward_model at all
        row(question=None),  # 4 empty prompt (no messages)
        row(question="   "),  # 5 blank user turn, but the system message has text: not empty
        row(truth="  "),  # 6 blank reference
        row(question="word " * 300),  # 7 too long
        row(question="Name a prime."),  # 8 good
    ]


def test_prompt_lengths_match_verl_counting(small_tokenizer):
    prompts = [row()["prompt"], "Name a prime.", row(question="word " * 300)["prompt"]]
    expected = [
        template_length(small_tokenizer, prompts[0]),
        template_length(small_tokenizer, [{"role": "user", "content": "Name a prime."}]),
        template_length(small_tokenizer, prompts[2]),
    ]
    assert prompt_lengths(prompts, small_tokenizer) == expected


def test_filter_policy_drops_and_names_each_bad_row(rows, small_tokenizer, caplog):
    limit = template_length(small_tokenizer, rows[0]["prompt"])
    assert (
        template_length(small_tokenizer, rows[7]["prompt"])
        > limit
        >= template_length(small_tokenizer, rows[8]["prompt"])
    )
    with caplog.at_level(logging.WARNING, logger="rlpr.data.checks"):
        checked = check_rows(rows, small_tokenizer, limit, "filter")
    # Row 5 keeps the non-blank system message, so it is not empty: only a prompt with no text at all is.
    assert checked.kept_indices == [0, 5, 8]
    assert checked.rows == [rows[0], rows[5], rows[8]]
    reasons = {b.index: b.reason for b in checked.bad}
    assert reasons == {
        1: NO_REFERENCE,
        2: NO_REFERENCE,
        3: NO_REFERENCE,
        4: EMPTY_PROMPT,
        6: NO_REFERENCE,
        7: PROMPT_TOO_LONG,
    }
    assert checked.counts == {NO_REFERENCE: 4, EMPTY_PROMPT: 1, PROMPT_TOO_LONG: 1}
    assert "6 of 9 training rows" in caplog.text
    assert "rows row 7: prompt_too_long" in caplog.text
    assert f"> data.max_prompt_length={limit}" in caplog.text


def test_prompt_of_exactly_max_length_is_kept(small_tokenizer):
    good = row()
    limit = template_length(small_tokenizer, good["prompt"])
    assert check_rows([good], small_tokenizer, limit).kept_indices == [0]
    with pytest.raises(BadDataError, match=rf"row 0: prompt_too_long \({limit} tokens .*={limit - 1}\)"):
        check_rows([good], small_tokenizer, limit - 1)


def test_error_policy_raises_naming_the_rows(rows, small_tokenizer):
    with pytest.raises(BadDataError) as err:
        check_rows(rows, small_tokenizer, 4096, "error", source="train.jsonl")
    message = str(err.value)
    assert "train.jsonl row 1: no_reference (reward_model.ground_truth is NoneType None" in message
    assert "train.jsonl row 2: no_reference (reward_model.ground_truth is int 42" in message
    assert "train.jsonl row 3: no_reference (reward_model is NoneType" in message
    assert "train.jsonl row 4: empty_prompt" in message
    assert "row 0:" not in message and "row 7:" not in message
    assert "rlpr.bad_prompt_policy=filter" in message


def test_blank_messages_and_string_prompts(small_tokenizer):
    # a plain-string prompt passed this check before, then crashed the r' pass (it needs chat messages)
    blank = row(question="  ")
    blank["prompt"] = [{"role": "user", "content": " \n"}]
    string_prompt = {**row(), "prompt": "What is 2 + 2?"}
    malformed = {**row(), "prompt": [{"content": "no role"}]}
    rows = [blank, string_prompt, malformed, {**row(), "prompt": ""}, row()]
    checked = check_rows(rows, small_tokenizer, 4096, "filter")
    assert checked.kept_indices == [4]
    details = {b.index: b.detail for b in checked.bad}
    assert details[0] == "every message of prompt has blank content"
    assert details[1].startswith("prompt is a string 'What is 2 + 2?', expected a list of chat messages")
    assert "prompt[0] is {'content': 'no role'}" in details[2]
    assert details[3].startswith("prompt is a string ''")


@pytest.mark.parametrize("suffix", [".parquet", ".jsonl"])
def test_files_are_checked_and_rows_named_by_file(tmp_path, small_tokenizer, suffix):
    first = write_rows([row(), row(truth=None)], tmp_path / f"a{suffix}")
    second = write_rows([row(question="Name a prime.")], tmp_path / f"b{suffix}")
    assert read_rows(first)[0]["prompt"] == row()["prompt"]
    checked = check_files([first, second], small_tokenizer, 4096, "filter")
    assert checked.kept_indices == [0, 2]
    assert [r["prompt"][1]["content"] for r in checked.rows] == ["What is the capital of France?", "Name a prime."]
    with pytest.raises(BadDataError, match=rf"{first} row 1: no_reference"):
        check_files(str(first), small_tokenizer, 4096, "error")


def test_bad_arguments_and_files(tmp_path, small_tokenizer):
    with pytest.raises(ValueError, match="unknown bad-prompt policy 'drop'"):
        check_rows([row()], small_tokenizer, 10, "drop")
    with pytest.raises(ValueError, match="max_prompt_length must be a positive integer, got 0"):
        check_rows([row()], small_tokenizer, 0)


# --- bad input that used to pass the check, or crash with a bare error --------------------------------------------


def _jsonl(path, *lines: bytes):
    path.write_bytes(b"".join(line + b"\n" for line in lines))
    return path


GOOD = json.dumps(row()).encode()


@pytest.mark.parametrize(
    ("lines", "reason", "detail"),
    [
        (
            [json.dumps({k: v for k, v in row().items() if k != "data_source"}).encode()],
            "no_data_source",
            "data_source",
        ),
        ([json.dumps(row(prompt="What is 2 + 2?")).encode()], "empty_prompt", "prompt is a string"),
        ([b'{"data_source": "\xff"}'], "unreadable_row", "line 2 is not valid UTF-8"),
        ([json.dumps(row(question="\ud800")).encode()], "unreadable_row", "lone surrogate"),
        ([b"null"], "unreadable_row", "row is None"),
        ([json.dumps(row(prompt=None)).encode()], "empty_prompt", "prompt is None"),
        ([b'{"data_source": "web", '], "unreadable_row", "line 2 is not valid JSON"),
        ([json.dumps(row(truth="x " * 50_000)).encode()], "reference_too_long", "tokens > the reference limit 512"),
    ],
)
def test_bad_training_rows_are_named_or_counted(tmp_path, small_tokenizer, lines, reason, detail):
    path = _jsonl(tmp_path / "train.jsonl", GOOD, *lines)
    with pytest.raises(BadDataError, match=rf"train.jsonl row 1: {reason} \(.*{detail}"):
        check_files(path, small_tokenizer, 4096, "error", max_reference_length=512)
    checked = check_files(path, small_tokenizer, 4096, "filter", max_reference_length=512)
    assert checked.kept_indices == [0] and checked.counts == {reason: 1}


def test_files_without_usable_rows_are_errors_under_both_policies(tmp_path, small_tokenizer):
    cases = {
        "empty.jsonl": (b"", "holds no rows"),
        "empty.json": (b"", r"is not valid JSON \(Expecting value at line 1 column 1"),
        "cut.json": (b'[{"data_source": "web", ', "is not valid JSON"),
        "latin1.json": (b'[{"data_source": "caf\xe9"}]', "is not valid UTF-8"),
        "broken.parquet": (b"PAR1 not really", "is not a readable parquet file"),
        "all_bad.jsonl": (b"null\n", "no training rows left"),
    }
    for name, (data, message) in cases.items():
        (tmp_path / name).write_bytes(data)
        for policy in ("error", "filter"):
            expected = message if (policy, name) != ("error", "all_bad.jsonl") else "row 0: unreadable_row"
            with pytest.raises(BadDataError, match=rf"{name}.*{expected}|{expected}.*{name}"):
                check_files(tmp_path / name, small_tokenizer, 4096, policy)


def test_reference_limit_counts_tokens_not_characters(small_tokenizer):
    reference = "photosynthesis " * 40
    tokens = len(small_tokenizer(reference, add_special_tokens=False)["input_ids"])
    assert check_rows([row(truth=reference)], small_tokenizer, 4096, max_reference_length=tokens).kept_indices == [0]
    with pytest.raises(BadDataError, match=f"has {tokens} tokens > the reference limit {tokens - 1}"):
        check_rows([row(truth=reference)], small_tokenizer, 4096, max_reference_length=tokens - 1)
