"""Validation scoring: answer extraction, rule grading, verl's custom reward entry."""

from __future__ import annotations

import asyncio
import inspect

import pytest
from omegaconf import OmegaConf

from rlpr.data.prompts import format_options
from rlpr.evaluation.benchmarks import find_benchmark
from rlpr.evaluation.validation import (
    answer_type_of,
    choice_letter,
    compute_score,
    extract_answer,
    normalize_text,
    rule_grade,
)
from tests.helpers.params import fast_and_slow

KEYS = {"score", "acc", "format", "has_answer", "judge_used", "judge_failed", "grade_timeout", "graded"}


# --- extraction -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("response", "expected"),
    [
        ("<think>so</think> <answer> Paris </answer>", "Paris"),
        ("<think>a</think><answer>The result is \\boxed{\\frac{1}{2}}.</answer>", "\\frac{1}{2}"),
        ("<answer>1</answer> then <answer>2</answer>", "2"),  # the last answer block
        ("<think>cut off</think> <answer> 42", "42"),  # no closing tag: to the end
        ("no tags, but \\boxed{x^{2}} and finally \\boxed{\\{1,2\\}}", "\\{1,2\\}"),
        ("\\fbox{7}", "7"),
        ("just talking", None),
        ("<answer>   </answer>", None),
        ("unbalanced \\boxed{3", None),
    ],
)
def test_extract_answer(response, expected):
    assert extract_answer(response) == expected


def test_extract_answer_rejects_non_text():
    with pytest.raises(ValueError, match="response"):
        extract_answer(None)


# --- grading ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "letter"),
    [
        ("B", "B"),
        ("(c)", "C"),
        ("D.", "D"),
        ("E)", "E"),
        ("$\\text{F}$", "F"),
        ("J", "J"),
        ("A) 3.2 eV", "A"),
        ("The answer is (G).", "G"),
        ("answer: H", "H"),
        ("Option I", "I"),
        ("K", None),
        ("A cat", None),
        ("I am not sure", None),
        ("", None),
    ],
)
def test_choice_letter(text, letter):
    assert choice_letter(text) == letter


@pytest.mark.parametrize(
    ("answer", "reference", "answer_type", "correct"),
    [
        ("B", "B", "choice", True),
        ("(b)", "B", "choice", True),
        ("The answer is C", "B", "choice", False),
        ("0.5", "\\frac{1}{2}", "math", True),
        ("\\dfrac{3}{4}", "3/4", "math", True),
        ("x^2 + 1", "$1 + x^{2}$", "math", True),
        ("3.1416", "3.14", "math", False),
        ("12", "13", "math", False),
        ("Paris.", "paris", "text", True),
        ("\\text{Mitochondria}", "mitochondria", "text", True),
        ("pairs", "Paris", "text", False),  # math-verify would call these equal products of symbols
        ("1/2", "0.5", "text", False),  # text answers get no numeric equivalence
    ],
)
def test_rule_grade(answer, reference, answer_type, correct):
    assert rule_grade(answer, reference, answer_type) is correct


def test_choice_answer_given_as_option_text():
    options = ["Venus", "Mars", "the  Moon"]
    assert choice_letter("Mars", options) == "B" and choice_letter("The moon.", options) == "C"
    assert choice_letter("Mars", None) is None and choice_letter("Pluto", options) is None
    assert choice_letter("Mars", ["Mars", "mars"]) is None  # ambiguous
    assert rule_grade("mars", "B", "choice", options) and not rule_grade("Venus", "B", "choice", options)
    question = format_options("Which planet is red?", options)
    out = _score("MMLU-Pro", "<think>t</think> <answer>Mars</answer>", "B", {"question": question})
    assert out["acc"] == 1.0


def test_rule_grade_rejects_bad_inputs():
    with pytest.raises(ValueError, match="answer_type"):
        rule_grade("1", "1", "numeric")
    with pytest.raises(ValueError, match="option letter"):
        rule_grade("A", "Paris", "choice")


def test_normalize_text():
    assert normalize_text("  $\\text{The  Nile}$. ") == "the nile"


# --- verl's custom reward ---------------------------------------------------------------------------------------


def _score(data_source, response, truth, extra=None, **kw):
    return asyncio.run(compute_score(data_source, response, truth, extra, **kw))


@pytest.mark.parametrize(
    ("source", "response", "truth", "extra", "expected"),
    [
        ("MATH-500", "<think>t</think> <answer>\\boxed{\\frac{1}{2}}</answer>", "0.5", None, (1.0, 1.0, 1.0)),
        ("MATH-500", "<think>t</think> <answer>3</answer>", "4", None, (0.0, 1.0, 1.0)),
        ("MMLU-Pro", "<think>t</think> <answer>(C)</answer>", "C", None, (1.0, 1.0, 1.0)),
        ("MMLU-Pro", "<answer>C</answer>", "C", None, (1.0, 0.0, 1.0)),  # right but not R1-formatted
        ("GPQA-diamond", "I do not know", "A", None, (0.0, 0.0, 0.0)),
        ("WebInstruct-verified", "<answer>Yes</answer>", "yes", {"answer_type": "text"}, (1.0, 0.0, 1.0)),
        ("my-own-set", "\\boxed{2}", "2", {"answer_type": "math"}, (1.0, 0.0, 1.0)),  # other sources say their type
        ("MMLUPro-1000_Avg2", "<think>t</think> <answer>(C)</answer>", "C", None, (1.0, 1.0, 1.0)),  # paper naming
        ("WebInstruct-verified-val_Avg2", "<answer>The answer is B</answer>", "B", None, (1.0, 0.0, 1.0)),
    ],
)
def test_compute_score_returns_the_same_keys_for_every_sample(source, response, truth, extra, expected):
    out = _score(source, response, truth, extra)
    assert set(out) == KEYS
    assert (out["acc"], out["format"], out["has_answer"]) == expected
    assert out["score"] == out["acc"] and out["judge_used"] == out["judge_failed"] == 0.0


def test_compute_score_format_mode():
    response = "<answer>4</answer>"
    assert _score("MATH-500", response, "4", format_mode="R1_nothink")["format"] == 1.0
    assert _score("MATH-500", response, "4", format_mode="R1")["format"] == 0.0


def test_compute_score_rejects_typos_and_bad_answer_types():
    with pytest.raises(TypeError, match="judge_modle"):
        _score("MATH-500", "<answer>4</answer>", "4", judge_modle="x")
    with pytest.raises(ValueError, match="answer_type"):
        _score("MATH-500", "<answer>4</answer>", "4", {"answer_type": "number"})
    with pytest.raises(ValueError, match="ground_truth"):
        _score("MATH-500", "<answer>4</answer>", 4)


def test_verl_loads_it_as_an_async_custom_reward():
    from verl.trainer.ppo.reward import get_custom_reward_fn

    config = OmegaConf.create(
        {
            "reward": {
                "custom_reward_function": {
                    "path": "pkg://rlpr.evaluation.validation",
                    "name": "compute_score",
                    "reward_kwargs": {"format_mode": "R1_nothink"},
                }
            }
        }
    )
    fn = get_custom_reward_fn(config)
    assert inspect.iscoroutinefunction(fn.func)
    out = asyncio.run(
        fn(
            data_source="MATH-500",
            solution_str="<answer>4</answer>",
            ground_truth="4",
            extra_info={"index": 0},
            reward_router_address=None,
        )
    )
    assert out["acc"] == 1.0 and out["format"] == 1.0


def test_unknown_source_is_an_error_not_math():
    for source in ("my-own-set", "MATH-5000_Avg2", "sample/chemistry"):
        assert find_benchmark(source) is None
        with pytest.raises(ValueError, match=f"data source '{source}' is not a known benchmark.*answer_type"):
            _score(source, "\\boxed{2}", "2", {})
    assert answer_type_of("my-own-set", None, "text") == "text"
    assert (
        _score("sample/chemistry", "<answer>NaCl</answer>", "NaCl", None, unknown_source_answer_type="text")["acc"] == 1
    )


def test_verl_naive_reward_manager_returns_our_keys(small_tokenizer):
    """The reward manager verl's reward loop uses for a custom function: decode, call us, pass our keys through."""
    import numpy as np
    import torch
    from verl import DataProto
    from verl.experimental.reward_loop.reward_manager.naive import NaiveRewardManager
    from verl.trainer.ppo.reward import get_custom_reward_fn

    config = OmegaConf.create(
        {
            "reward": {
                "custom_reward_function": {
                    "path": "pkg://rlpr.evaluation.validation",
                    "name": "compute_score",
                    "reward_kwargs": {"format_mode": "R1"},
                }
            }
        }
    )
    manager = NaiveRewardManager(config, small_tokenizer, get_custom_reward_fn(config))
    prompt = small_tokenizer("Q?", add_special_tokens=False)["input_ids"]
    results = []
    for text, truth in [("<think>t</think> <answer>B</answer>", "B"), ("<answer>7</answer>", "8")]:
        response = small_tokenizer(text, add_special_tokens=False)["input_ids"] + [small_tokenizer.pad_token_id] * 3
        valid = len(response) - 3
        data = DataProto.from_dict(
            tensors={
                "prompts": torch.tensor([prompt]),
                "responses": torch.tensor([response]),
                "attention_mask": torch.tensor([[1] * len(prompt) + [1] * valid + [0] * 3]),
            },
            non_tensors={
                "data_source": np.array(["MMLU-Pro" if truth == "B" else "MATH-500"], dtype=object),
                "reward_model": np.array([{"ground_truth": truth, "style": "rule"}], dtype=object),
                "extra_info": np.array([{"index": 0}], dtype=object),
            },
        )
        results.append(manager.loop.run_until_complete(manager.run_single(data)))
    assert [r["reward_score"] for r in results] == [1.0, 0.0]
    assert all(set(r["reward_extra_info"]) == KEYS for r in results)
    assert results[0]["reward_extra_info"]["format"] == 1.0 and results[1]["reward_extra_info"]["format"] == 0.0


# --- bounds and training rollouts -------------------------------------------------------------------------------


def test_grading_is_bounded_on_a_thread_that_is_not_the_main_one():
    # verl's reward loop is a Ray async actor: its event loop runs in a non-main thread, where SIGALRM cannot be set.
    # math-verify on this answer computes a tower of powers and never returns on its own.
    import threading

    result = {}

    def reward_actor() -> None:
        result["out"] = asyncio.run(
            compute_score("MATH-500", "<answer>9^{9^{9^{9}}}</answer>", "1", None, grade_timeout=2)
        )

    thread = threading.Thread(target=reward_actor, daemon=True)
    thread.start()
    thread.join(180)
    assert not thread.is_alive(), "the grading did not finish: it is not bounded off the main thread"
    assert result["out"]["grade_timeout"] == 1.0 and result["out"]["acc"] == 0.0 and result["out"]["graded"] == 1.0
    assert rule_grade("1/2", "0.5", "math")  # a fresh grader process takes over


def test_marked_training_rollouts_are_not_graded(monkeypatch):
    import numpy as np
    from verl import DataProto

    import rlpr.evaluation.validation as validation

    def no_grading(*args, **kwargs):
        raise AssertionError("a training rollout was graded")

    monkeypatch.setattr(validation, "rule_grade", no_grading)
    monkeypatch.setattr(validation, "format_reward", no_grading)
    batch = DataProto.from_single_dict(
        {"extra_info": np.array([{"index": 0}, None], dtype=object), "data_source": np.array(["a", "b"], dtype=object)}
    )
    validation.mark_training_rollouts(batch)
    infos = list(batch.non_tensor_batch["extra_info"])
    assert infos == [{"index": 0, validation.TRAINING_ROLLOUT: True}, {validation.TRAINING_ROLLOUT: True}]
    judge = {"judge_base_url": "http://127.0.0.1:9/v1", "judge_model": "m"}  # nothing listens: a call would fail
    out = asyncio.run(compute_score("MATH-500", "<answer>1/2</answer>", "0.5", infos[0], **judge))
    assert out == validation.NOT_GRADED and set(out) == KEYS and out["graded"] == 0.0


@pytest.mark.parametrize(
    "recipe",
    fast_and_slow(["qwen2.5-7b-base", "llama3.1-8b-instruct", "gemma2-2b-it", "smoke_cpu"], ["qwen2.5-7b-base"]),
)
def test_recipe_reward_kwargs_are_accepted(recipe):
    from rlpr.main import compose_recipe

    config = compose_recipe(recipe)  # the recipe on the shared base, as the entry point composes it
    kwargs = OmegaConf.to_container(config.reward.custom_reward_function.reward_kwargs, resolve=True)
    assert kwargs["format_mode"] == config.rlpr.format_mode  # as verl/trainer/ppo/reward.py:82 passes them
    assert _score("Math-500_Avg2", "<think>t</think> <answer>4</answer>", "4", None, **kwargs)["acc"] == 1.0
    if recipe == "smoke_cpu":
        assert _score("sample/chemistry", "<answer>NaCl</answer>", "NaCl", None, **kwargs)["acc"] == 1.0
    else:
        assert kwargs.get("judge_protocol") == "paper"
