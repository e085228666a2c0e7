"""The two seeded tasks of the learning-curve experiment (docs/learning_curve.md), their graders and warm-start data.

Both tasks ask for ``a+b+c`` with a, b, c in 1..9; the response is ``<think> a+b=s </think> <answer> y </answer>``.

* ``exact``: the reference is the sum in digits; exact match is a reliable verifier.
* ``freeform``: the reference is the sum in one of ``FORMS`` (digits ``12``, words ``twelve``, Roman ``XII``, with
  a unit ``12 units``), drawn at random per prompt with the seed, so no rule on the prompt predicts it. A correct
  answer in another form is still correct (the task's true equivalence, ``parse_number``), but exact match calls it
  wrong: it rewards a correct answer only when the model happens to pick the reference's form (1 time in 4). The
  warm-start data writes every answer in a random form, so the equivalences are in what the model learned.

Validation grades by the true equivalence (``compute_score``, verl's custom reward for validation); the RLVR arm's
training reward is ``exact_match``.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rlpr.answer import ANSWER_CLOSE, ANSWER_OPEN, THINK_CLOSE, THINK_OPEN
from rlpr.evaluation.validation import NOT_GRADED, TRAINING_ROLLOUT, extract_answer

TASKS = ("exact", "freeform")
FORMS = ("digits", "words", "roman", "units")
SYSTEM_PROMPT = "Add."
VAL_SIZE = 200
DIGITS = range(1, 10)

_ONES = ("", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve",
         "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen")  # fmt: skip
_TENS = {2: "twenty", 3: "thirty"}
_ROMAN = ((10, "X"), (9, "IX"), (5, "V"), (4, "IV"), (1, "I"))
_UNIT = " units"


def number_words(n: int) -> str:
    """English words of ``n`` in 1..39, tens and ones joined by a hyphen (``twenty-seven``)."""
    if not 1 <= n <= 39:
        raise ValueError(f"number_words covers 1..39, got {n}")
    if n < 20:
        return _ONES[n]
    tens, ones = divmod(n, 10)
    return _TENS[tens] + (f"-{_ONES[ones]}" if ones else "")


def roman(n: int) -> str:
    """Roman numeral of ``n`` in 1..39."""
    if not 1 <= n <= 39:
        raise ValueError(f"roman covers 1..39, got {n}")
    out = []
    for value, letters in _ROMAN:
        while n >= value:
            out.append(letters)
            n -= value
    return "".join(out)


def render(n: int, form: str) -> str:
    """``n`` written in ``form`` (one of ``FORMS``)."""
    if form == "digits":
        return str(n)
    if form == "words":
        return number_words(n)
    if form == "roman":
        return roman(n)
    if form == "units":
        return f"{n}{_UNIT}"
    raise ValueError(f"unknown form {form!r}; expected one of {FORMS}")


_PARSE = {render(n, form): n for n in range(1, 40) for form in FORMS}


def parse_number(text: str | None) -> int | None:
    """The number an answer names in any of ``FORMS`` (surrounding whitespace ignored), None if it names none."""
    if text is None:
        return None
    return _PARSE.get(text.strip())


@dataclass(frozen=True)
class Problem:
    a: int
    b: int
    c: int
    reference: str  # the sum in the task's reference form

    @property
    def total(self) -> int:
        return self.a + self.b + self.c

    @property
    def question(self) -> str:
        return f"{self.a}+{self.b}+{self.c}"

    def messages(self) -> list[dict[str, str]]:
        return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": self.question}]


def make_problems(task: str, seed: int, val_size: int = VAL_SIZE) -> tuple[list[Problem], list[Problem]]:
    """(train, validation) problems of ``task``: every triple of ``DIGITS`` once, shuffled with ``seed``, the first
    ``val_size`` held out. ``freeform`` references take a form drawn per problem from ``FORMS`` with the same seed."""
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; expected one of {TASKS}")
    rng = random.Random(f"{task}/{seed}")
    triples = [(a, b, c) for a in DIGITS for b in DIGITS for c in DIGITS]
    if not 0 < val_size < len(triples):
        raise ValueError(f"val_size must be in 1..{len(triples) - 1}, got {val_size}")
    rng.shuffle(triples)
    problems = []
    for a, b, c in triples:
        form = rng.choice(FORMS) if task == "freeform" else "digits"
        problems.append(Problem(a, b, c, render(a + b + c, form)))
    return problems[val_size:], problems[:val_size]


def reasoning_response(problem: Problem, partial: int, answer: str) -> str:
    """``<think> a+b=partial </think> <answer> answer </answer>``."""
    return f"{THINK_OPEN} {problem.a}+{problem.b}={partial} {THINK_CLOSE} {ANSWER_OPEN} {answer} {ANSWER_CLOSE}"


def direct_response(answer: str) -> str:
    """``<answer> answer </answer>``: no reasoning (the shape of the tagged debias sequence)."""
    return f"{ANSWER_OPEN} {answer} {ANSWER_CLOSE}"


def warm_start_examples(
    task: str,
    problems: Sequence[Problem],
    seed: int,
    copies: int = 2,
    noisy_frac: float = 0.4,
    direct_frac: float = 0.2,
) -> list[tuple[list[dict[str, str]], str]]:
    """(messages, response) pairs for the supervised warm start: ``copies`` independent draws per problem.

    A draw answers directly (``direct_response`` of the right sum) with probability ``direct_frac``; otherwise it
    reasons, and with probability ``noisy_frac`` its partial sum is off by +-1 or +-2 (never below 1) and its answer is
    consistent with that wrong partial sum. Answers are in digits (``exact``) or in a form drawn from ``FORMS``
    (``freeform``)."""
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; expected one of {TASKS}")
    rng = random.Random(f"warm/{task}/{seed}")
    out = []
    for problem in problems:
        for _ in range(copies):
            form = rng.choice(FORMS) if task == "freeform" else "digits"
            if rng.random() < direct_frac:
                out.append((problem.messages(), direct_response(render(problem.total, form))))
                continue
            partial = problem.a + problem.b
            if rng.random() < noisy_frac:
                partial = max(1, partial + rng.choice((-2, -1, 1, 2)))
            out.append((problem.messages(), reasoning_response(problem, partial, render(partial + problem.c, form))))
    return out


def verl_rows(task: str, problems: Sequence[Problem], split: str) -> list[dict[str, Any]]:
    """The problems as verl training/validation rows (``data_source`` ``learning_curve/<task>``)."""
    return [
        {
            "data_source": f"learning_curve/{task}",
            "prompt": p.messages(),
            "ability": "arithmetic",
            "reward_model": {"style": "model", "ground_truth": p.reference},
            "extra_info": {"index": i, "split": split, "total": p.total},
        }
        for i, p in enumerate(problems)
    ]


def exact_match(response: str, reference: str) -> float:
    """The RLVR arm's rule: 1.0 iff the response's answer (``extract_answer``) is the reference string, else 0.0."""
    return float(extract_answer(response) == reference.strip())


def truly_correct(response: str, reference: str) -> bool:
    """The task's true equivalence: the response's answer names the same number as the reference, in any form."""
    want = parse_number(reference)
    if want is None:
        raise ValueError(f"reference {reference!r} names no number in any of {FORMS}")
    return parse_number(extract_answer(response)) == want


def compute_score(
    data_source: str,
    solution_str: str,
    ground_truth: str,
    extra_info: Mapping[str, Any] | None = None,
    **verl_kwargs: Any,
) -> dict[str, float]:
    """verl's custom reward for validation: ``score`` = ``acc`` = ``truly_correct``. Training rollouts (marked by the
    trainer) are returned ungraded, as ``rlpr.evaluation.validation.compute_score`` does."""
    from harness.verl_reward_call import VERL_CALL_KWARGS

    unknown = set(verl_kwargs) - VERL_CALL_KWARGS
    if unknown:
        raise TypeError(f"compute_score got unknown keyword arguments {sorted(unknown)}")
    if (extra_info or {}).get(TRAINING_ROLLOUT):
        return {key: NOT_GRADED[key] for key in ("score", "acc", "graded")}
    acc = float(truly_correct(solution_str, ground_truth))
    return {"score": acc, "acc": acc, "graded": 1.0}
