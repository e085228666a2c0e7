"""Validation scoring of RLPR (docs/rlpr.md#evaluation): rule grading and an optional LLM judge.

* ``compute_score`` is verl's ``reward.custom_reward_function`` (``path=pkg://rlpr.evaluation.validation``,
  ``name=compute_score``): it extracts the answer of a response, grades it, and returns ``score`` plus the same extra
  keys for every sample (``acc``, ``format``, ``has_answer``, ``judge_used``, ``judge_failed``).
* The benchmark registry and the Avg@k table over the grades are ``rlpr.evaluation.benchmarks``.

Grading by answer type (``extra_info["answer_type"]``, else the benchmark's default, else ``math``):

* ``choice`` compares option letters; an answer that gives an option's text instead of its letter counts as that
  option when ``extra_info["question"]`` lists the options (``rlpr.data.prompts.format_options``);
* ``math`` accepts a normalised string match or math-verify equivalence;
* ``text`` accepts a normalised string match only.

When a judge is configured, responses that the rules reject are sent to it. Its protocol (``rlpr.evaluation.judge``)
decides what it sees: ``paper`` (the default, the paper's official evaluation) sends the question, the reference and the
FULL response for every answer type (a multiple-choice judge, which never sees the reference, names the chosen
letter and the code compares it); ``answer`` sends only the
extracted answer and never judges multiple choice or a response without an answer. Each benchmark may have its own judge
endpoint (``judge_endpoints``).

Secrets: a judge's API key is read from the environment variable named by ``judge_api_key_env`` (or an endpoint's
``api_key_env``), in the process that scores; a literal ``judge_api_key`` or endpoint ``api_key`` is refused, since
verl prints the config and hands it to its loggers (``judge_secrets`` checks a config before anything starts).

Benchmarks are recognised from their ``data_source`` in this project's naming or the paper's
(``rlpr.evaluation.benchmarks.find_benchmark``: ``MMLUPro-1000_Avg2``, ``gpqa_diamond_Avg4``, ...); any other source
needs ``extra_info["answer_type"]`` (or ``unknown_source_answer_type``), else grading it is an error.

Bounds. Every answer parser here is linear in the response length. math-verify (the only step whose cost is not
bounded by the text length) runs in child processes (``python -m rlpr.evaluation.validation``), each grading bounded by
a wall-clock deadline (``grade_timeout`` seconds): a grading past it is abandoned, its process killed, and the sample is
counted in ``grade_timeout`` (the rule verdict is then "not verified"). This works on any thread; verl runs the reward
in a Ray async actor whose event loop is not the main thread, where math-verify's own SIGALRM timeout cannot be used.

Training rollouts. verl streams ``reward.custom_reward_function`` over training rollouts as well as validation ones
(``AgentLoopWorker._compute_score`` in verl/experimental/agent_loop/agent_loop.py sends every rollout to the reward
loop, and nothing of ``meta_info["validate"]`` reaches ``compute_score``; only the row's ``extra_info`` does). RLPR
replaces that score with its own reward, so the trainer marks its training rows (``mark_training_rollouts``) and
``compute_score`` returns at once for them (``graded`` = 0), doing no grading or judge call.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import select
import subprocess
import sys
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from harness.verl_reward_call import VERL_CALL_KWARGS
from rlpr.answer import ANSWER_CLOSE, ANSWER_OPEN, format_reward
from rlpr.data.prompts import OPTION_LETTERS, parse_options
from rlpr.evaluation.benchmarks import find_benchmark, known_source_names
from rlpr.evaluation.judge import JudgeConfig, JudgeError, LLMJudge

logger = logging.getLogger(__name__)

ANSWER_TYPES = ("math", "choice", "text")


# ---------------------------------------------------------------------------------------------------------------
# Answer extraction


def last_boxed(text: str) -> str | None:
    r"""Content of the last ``\boxed{...}`` (or ``\fbox{...}``) in ``text`` with balanced braces, else None."""
    start = max(text.rfind("\\boxed{"), text.rfind("\\fbox{"))
    if start < 0:
        return None
    i = text.index("{", start) + 1
    depth = 1
    for j in range(i, len(text)):
        if text[j] == "{":
            depth += 1
        elif text[j] == "}":
            depth -= 1
            if depth == 0:
                return text[i:j]
    return None


def extract_answer(response: str) -> str | None:
    r"""The final answer of ``response``, or None if it gives none.

    The text after the last ``<answer>`` up to the next ``</answer>`` (or the end); if that text holds a
    ``\boxed{}``, the boxed content. Without an ``<answer>`` tag, the last ``\boxed{}`` of the response.
    """
    if not isinstance(response, str):
        raise ValueError(f"response must be a str, got {type(response).__name__}")
    if ANSWER_OPEN in response:
        answer = response.rsplit(ANSWER_OPEN, 1)[1].split(ANSWER_CLOSE, 1)[0]
        answer = last_boxed(answer) or answer
    else:
        answer = last_boxed(response)
    answer = answer.strip() if answer is not None else ""
    return answer or None


# ---------------------------------------------------------------------------------------------------------------
# Rule grading

_TEXT_WRAPPER = re.compile(r"\\(?:text|textbf|mathrm|mathbf)\{([^{}]*)\}")
_BARE_LETTER = re.compile(r"\(?([A-Ja-j])\)?[.:)]?")  # "B", "(b)", "B.", "B)"
_LETTER_PATTERNS = (
    re.compile(r"^\(?([A-J])[.:)]\s"),  # "B) the option text"
    # "the answer is (B)"; the runs of non-letters around "is" cannot trade characters, so matching stays linear
    re.compile(r"(?i:\banswer\b)[^A-Za-z]*(?:(?i:is)[^A-Za-z]*)?([A-J])\b"),
    re.compile(r"(?i:\boption)\s*\(?([A-J])\b"),  # "option B"
)


def normalize_text(text: str) -> str:
    r"""Lower-cased answer text without ``$``, ``\text{}``-style wrappers, a trailing period, or extra spaces."""
    text = _TEXT_WRAPPER.sub(r"\1", text)
    text = text.replace("$", "").strip()
    text = text.rstrip(".").strip().strip("\"'").strip()
    return " ".join(text.lower().split())


def choice_letter(text: str, options: Sequence[str] | None = None) -> str | None:
    """The option letter (A-J) an answer names, or None if it names none.

    With ``options`` (the option texts in letter order), an answer that is exactly one option's text (after
    ``normalize_text``) names that option.
    """
    plain = _TEXT_WRAPPER.sub(r"\1", text).replace("$", "").strip()
    found = _BARE_LETTER.fullmatch(plain)
    if found:
        return found.group(1).upper()
    for pattern in _LETTER_PATTERNS:
        found = pattern.search(plain)
        if found:
            return found.group(1)
    if options:
        wanted = normalize_text(text)
        matches = [letter for letter, option in zip(OPTION_LETTERS, options) if normalize_text(option) == wanted]
        if len(matches) == 1:
            return matches[0]
    return None


def _math_verify_equal(reference: str, answer: str) -> bool:
    # No timeout here (math-verify's is SIGALRM-based): the caller bounds the whole call (``_MathVerifyPool``).
    from math_verify import parse, verify

    def boxed(s: str) -> str:
        s = s.strip().strip("$")
        return s if "\\boxed" in s else f"\\boxed{{{s}}}"

    gold = parse(boxed(reference), parsing_timeout=None)
    pred = parse(boxed(answer), parsing_timeout=None)
    return bool(gold and pred and verify(gold, pred, timeout_seconds=None))


DEFAULT_GRADE_TIMEOUT_S = 10.0
_STARTUP_TIMEOUT_S = 300.0
_GRADER_PROCESSES = max(1, min(4, (os.cpu_count() or 1) // 2))
_PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])


class GradingTimeout(TimeoutError):
    """A math-verify grading that did not finish within its wall-clock deadline (its process was killed)."""


class _MathVerifyProcess:
    """A child process (``python -m rlpr.evaluation.validation``) answering math-verify questions one at a time."""

    def __init__(self) -> None:
        path = os.pathsep.join(p for p in (_PACKAGE_ROOT, os.environ.get("PYTHONPATH")) if p)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "rlpr.evaluation.validation"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env={**os.environ, "PYTHONPATH": path},
        )
        if self._reply(_STARTUP_TIMEOUT_S) != "ready":
            self.kill()
            raise RuntimeError("the math-verify grader process did not start (see its stderr above)")

    def equal(self, reference: str, answer: str, timeout_s: float) -> bool:
        self.proc.stdin.write(json.dumps([reference, answer]).encode() + b"\n")
        self.proc.stdin.flush()
        reply = self._reply(timeout_s)
        if isinstance(reply, dict):
            raise RuntimeError(f"math-verify failed on {answer[:200]!r} vs {reference[:200]!r}: {reply['error']}")
        return bool(reply)

    def _reply(self, timeout_s: float) -> Any:
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout_s)
        if not ready:
            raise GradingTimeout(f"math-verify took longer than {timeout_s} s")
        line = self.proc.stdout.readline()
        if not line:
            raise GradingTimeout(f"the math-verify process exited (code {self.proc.poll()})")
        return json.loads(line)

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait()


class _MathVerifyPool:
    """At most ``size`` grader processes; each grading takes an idle one (or starts one) and returns it after."""

    def __init__(self, size: int) -> None:
        self._slots = threading.BoundedSemaphore(size)
        self._lock = threading.Lock()
        self._idle: list[_MathVerifyProcess] = []
        self.pid = os.getpid()

    def equal(self, reference: str, answer: str, timeout_s: float) -> bool:
        with self._slots:
            with self._lock:
                worker = self._idle.pop() if self._idle else None
            if worker is None or worker.proc.poll() is not None:
                worker = _MathVerifyProcess()
            try:
                result = worker.equal(reference, answer, timeout_s)
            except BaseException:
                worker.kill()
                raise
            with self._lock:
                self._idle.append(worker)
            return result


_POOL: _MathVerifyPool | None = None
_POOL_LOCK = threading.Lock()


def math_verify_equal(reference: str, answer: str, timeout_s: float = DEFAULT_GRADE_TIMEOUT_S) -> bool:
    """math-verify equivalence of ``answer`` and ``reference``, computed in a grader process.

    Raises ``GradingTimeout`` when it takes longer than ``timeout_s`` seconds (wall clock; any thread may call this).
    """
    if not timeout_s > 0:
        raise ValueError(f"grade timeout must be positive, got {timeout_s!r}")
    global _POOL
    with _POOL_LOCK:
        if _POOL is None or _POOL.pid != os.getpid():  # a forked child must not share its parent's pipes
            _POOL = _MathVerifyPool(_GRADER_PROCESSES)
        pool = _POOL
    return pool.equal(reference, answer, timeout_s)


def _serve_math_verify() -> None:
    """The grader process: read ``[reference, answer]`` lines on stdin, write the verdict (JSON) on stdout."""
    replies = os.fdopen(os.dup(sys.stdout.fileno()), "w")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # whatever a library prints goes to stderr, not the protocol
    import math_verify  # noqa: F401  (import before "ready": it takes a few seconds)

    logging.getLogger("math_verify").setLevel(logging.ERROR)  # "timeout disabled": this process is the timeout
    replies.write('"ready"\n')
    replies.flush()
    for line in sys.stdin:
        reference, answer = json.loads(line)
        try:
            reply: Any = _math_verify_equal(reference, answer)
        except Exception as exc:  # math-verify returns False on its own errors; anything else is reported
            reply = {"error": f"{type(exc).__name__}: {exc}"}
        replies.write(json.dumps(reply) + "\n")
        replies.flush()


def rule_grade(
    answer: str,
    reference: str,
    answer_type: str,
    options: Sequence[str] | None = None,
    *,
    timeout_s: float = DEFAULT_GRADE_TIMEOUT_S,
) -> bool:
    """Whether ``answer`` matches ``reference`` under the rules of ``answer_type`` (see the module docstring).

    ``options`` (multiple choice only) are the option texts in letter order. The math-verify step is bounded by
    ``timeout_s`` seconds of wall clock; past it, ``GradingTimeout`` is raised.
    """
    if answer_type not in ANSWER_TYPES:
        raise ValueError(f"unknown answer_type {answer_type!r}; expected one of {ANSWER_TYPES}")
    if answer_type == "choice":
        gold = choice_letter(reference)
        if gold is None:
            raise ValueError(f"multiple-choice reference must be an option letter A-J, got {reference!r}")
        return choice_letter(answer, options) == gold
    if normalize_text(answer) == normalize_text(reference):
        return True
    return answer_type == "math" and math_verify_equal(reference, answer, timeout_s)


# ---------------------------------------------------------------------------------------------------------------
# Grading one response (rules, then the judge)


@dataclass(frozen=True)
class Grade:
    """The outcome of grading one response; ``prediction`` is the extracted answer (None if there was none)."""

    prediction: str | None
    acc: float
    format: float
    judge_used: float
    judge_failed: float
    grade_timeout: float = 0.0

    def reward_dict(self) -> dict[str, float]:
        """verl's per-sample result: ``score`` and the extra keys, identical for every sample."""
        return {
            "score": self.acc,
            "acc": self.acc,
            "format": self.format,
            "has_answer": float(self.prediction is not None),
            "judge_used": self.judge_used,
            "judge_failed": self.judge_failed,
            "grade_timeout": self.grade_timeout,
            "graded": 1.0,
        }


# What compute_score returns for a training rollout: the same keys, nothing graded.
NOT_GRADED = {**Grade(None, 0.0, 0.0, 0.0, 0.0).reward_dict(), "graded": 0.0}
TRAINING_ROLLOUT = "rlpr_training_rollout"
"""``extra_info`` key that marks a training row: ``compute_score`` does not grade it (see the module docstring)."""


def mark_training_rollouts(batch: Any) -> None:
    """Set ``extra_info[TRAINING_ROLLOUT] = True`` on every row of a verl ``DataProto`` (new dicts, in place).

    Call it on the prompt batch before generating a training round, so that verl's streamed
    ``reward.custom_reward_function`` (``compute_score``) skips those rollouts.
    """
    import numpy as np

    rows = batch.non_tensor_batch.get("extra_info")
    marked = np.empty(len(batch), dtype=object)
    for i in range(len(batch)):
        given = rows[i] if rows is not None else None
        marked[i] = {**(given or {}), TRAINING_ROLLOUT: True}
    batch.non_tensor_batch["extra_info"] = marked


def answer_type_of(
    data_source: str, extra_info: Mapping[str, Any] | None, unknown_source_answer_type: str | None = None
) -> str:
    """``extra_info["answer_type"]`` if given, else the default of the benchmark that ``data_source`` names
    (``find_benchmark``), else ``unknown_source_answer_type``; a source that none of these covers is an error."""
    given = (extra_info or {}).get("answer_type")
    if given is not None:
        if given not in ANSWER_TYPES:
            raise ValueError(f"extra_info['answer_type'] must be one of {ANSWER_TYPES}, got {given!r}")
        return given
    bench = find_benchmark(data_source)
    if bench is not None:
        return bench.answer_type
    if unknown_source_answer_type is not None:
        if unknown_source_answer_type not in ANSWER_TYPES:
            raise ValueError(
                f"unknown_source_answer_type must be one of {ANSWER_TYPES}, got {unknown_source_answer_type!r}"
            )
        return unknown_source_answer_type
    raise ValueError(
        f"data source {data_source!r} is not a known benchmark ({known_source_names()}, each optionally ending in "
        "_Avg<k>) and its row has no extra_info['answer_type'] (one of math, choice, text); set that, or "
        "reward_kwargs.unknown_source_answer_type"
    )


async def grade_response(
    data_source: str,
    response: str,
    reference: str,
    extra_info: Mapping[str, Any] | None = None,
    *,
    format_mode: str = "R1",
    judge: LLMJudge | None = None,
    grade_timeout: float = DEFAULT_GRADE_TIMEOUT_S,
    unknown_source_answer_type: str | None = None,
) -> Grade:
    """Extract, rule-grade, and (when ``judge`` is given and the rules say no) ask the judge.

    The judge's protocol (``JudgeConfig.protocol``) decides what it sees: ``paper`` sends the full ``response`` for
    every answer type, even when no answer could be extracted; ``answer`` sends the extracted answer and skips
    multiple-choice questions and responses without an answer.

    The rule grading runs in a worker thread (math-verify in a grader process, at most ``grade_timeout`` seconds), so
    the event loop stays free. A grading past its deadline counts in ``grade_timeout`` and is "not verified" by the
    rules; a judge failure is counted in ``judge_failed`` and logged; the rule verdict then stands.
    """
    if not isinstance(reference, str):
        raise ValueError(f"ground_truth of {data_source!r} must be a str, got {type(reference).__name__}")
    answer_type = answer_type_of(data_source, extra_info, unknown_source_answer_type)
    fmt = format_reward(response, format_mode)
    prediction = extract_answer(response)
    correct, timed_out = False, 0.0
    if prediction is not None:
        options = parse_options((extra_info or {}).get("question") or "") if answer_type == "choice" else None
        grade = partial(rule_grade, prediction, reference, answer_type, options, timeout_s=grade_timeout)
        try:
            correct = await asyncio.get_running_loop().run_in_executor(None, grade)
        except GradingTimeout as exc:
            logger.warning("rule grading of a %s sample abandoned (counted in grade_timeout): %s", data_source, exc)
            timed_out = 1.0
    paper = judge is not None and judge.config.protocol == "paper"
    if correct or judge is None or not paper and (answer_type == "choice" or prediction is None):
        return Grade(prediction, float(correct), fmt, 0.0, 0.0, timed_out)
    question = (extra_info or {}).get("question")
    if not isinstance(question, str) or not question:
        raise ValueError(f"the LLM judge needs extra_info['question'] (a non-empty str) for {data_source!r} rows")
    candidate = response if paper else prediction
    try:
        correct = await judge.judge(question, reference, candidate, multiple_choice=answer_type == "choice")
    except JudgeError as exc:
        logger.warning("judge failed on a %s sample; keeping the rule verdict: %s", data_source, exc)
        return Grade(prediction, 0.0, fmt, 1.0, 1.0, timed_out)
    return Grade(prediction, float(correct), fmt, 1.0, 0.0, timed_out)


_ENDPOINT_KEYS = frozenset({"base_url", "model", "api_key_env"})


def judge_from_kwargs(
    judge_base_url: str | None = None,
    judge_model: str | None = None,
    judge_api_key: str | None = None,
    judge_concurrency: int = 16,
    judge_timeout: float = 60.0,
    judge_retries: int = 2,
    judge_protocol: str = "paper",
    judge_max_tokens: int | None = None,
    judge_verdict_rule: str = "official",
) -> LLMJudge | None:
    """An ``LLMJudge`` if ``judge_base_url`` is set (then ``judge_model`` is required), else None."""
    if not judge_base_url:
        return None
    config = JudgeConfig(
        base_url=judge_base_url,
        model=judge_model,
        api_key=judge_api_key,
        concurrency=int(judge_concurrency),
        timeout_s=float(judge_timeout),
        retries=int(judge_retries),
        protocol=judge_protocol,
        max_tokens=None if judge_max_tokens is None else int(judge_max_tokens),
        verdict_rule=judge_verdict_rule,
    )
    return LLMJudge(config)


def literal_key_refused(setting: str, instead: str) -> ValueError:
    """The error for a literal API key at ``setting`` of ``reward_kwargs`` (it never holds the key)."""
    return ValueError(
        f"reward_kwargs.{setting}: a literal API key in the config is refused (verl prints the config and hands it to "
        f"its loggers); export the key in an environment variable and set reward_kwargs.{instead} to that variable's "
        "name"
    )


def key_from_environment(variable: str | None, setting: str) -> str | None:
    """The value of the environment variable ``variable`` (None when no variable is named); a named variable that is
    unset or empty is a ``ValueError`` naming it and ``setting``, the option or key that named it."""
    if not variable:
        return None
    value = os.environ.get(str(variable))
    if not value:
        raise ValueError(f"{setting}={variable}: that environment variable is not set")
    return value


def checked_endpoints(endpoints: Mapping[str, Any] | None) -> dict[str, Mapping[str, Any]]:
    """``judge_endpoints`` keyed by benchmark name, after checking each key names a benchmark and each entry holds only
    ``base_url`` / ``model`` / ``api_key_env`` (a literal ``api_key`` is refused, naming ``api_key_env``)."""
    checked: dict[str, Mapping[str, Any]] = {}
    for key, entry in (endpoints or {}).items():
        named = find_benchmark(str(key))
        if named is None:
            raise ValueError(
                f"judge_endpoints key {key!r} is not a benchmark name; expected one of {known_source_names()}"
            )
        if isinstance(entry, Mapping) and "api_key" in entry:
            raise literal_key_refused(f"judge_endpoints[{key}].api_key", f"judge_endpoints[{key}].api_key_env")
        if not isinstance(entry, Mapping) or not set(entry) <= _ENDPOINT_KEYS:
            raise ValueError(
                f"judge_endpoints[{key!r}] must be a mapping with keys among {sorted(_ENDPOINT_KEYS)}, got {entry!r}"
            )
        checked[named.name] = entry
    return checked


def judge_secrets(reward_kwargs: Mapping[str, Any]) -> dict[str, str]:
    """{variable: value} of every judge API key that ``reward_kwargs`` names (``judge_api_key_env`` and the endpoints'
    ``api_key_env``; {} without one), read from this process's environment: what the scoring workers must be given.
    A literal key, or a named variable that is not set, is a ``ValueError`` that never shows a key."""
    if reward_kwargs.get("judge_api_key") is not None:
        raise literal_key_refused("judge_api_key", "judge_api_key_env")
    named = {"reward_kwargs.judge_api_key_env": reward_kwargs.get("judge_api_key_env")}
    for bench, entry in checked_endpoints(reward_kwargs.get("judge_endpoints")).items():
        named[f"reward_kwargs.judge_endpoints[{bench}].api_key_env"] = entry.get("api_key_env")
    return {str(variable): key_from_environment(variable, setting) for setting, variable in named.items() if variable}


def endpoint_for(
    data_source: str,
    base_url: str | None,
    model: str | None,
    api_key_env: str | None,
    endpoints: Mapping[str, Any] | None,
) -> tuple[str | None, str | None, str | None]:
    """(base_url, model, api_key_env) of the judge for ``data_source``: the entry of ``endpoints`` (keyed by benchmark
    name or alias, e.g. ``{TheoremQA: {base_url: ..., model: ...}}``) for its benchmark, over the defaults."""
    checked = checked_endpoints(endpoints)
    bench = find_benchmark(data_source)
    chosen = checked.get(bench.name) if bench is not None else None
    if chosen is None:
        return base_url, model, api_key_env
    return chosen.get("base_url", base_url), chosen.get("model", model), chosen.get("api_key_env", api_key_env)


def _named_in(data_source: str, names: Sequence[str]) -> bool:
    """Whether ``names`` holds ``data_source`` itself or a name of its benchmark."""
    bench = find_benchmark(data_source)
    return data_source in names or (
        bench is not None and any(getattr(find_benchmark(n), "name", None) == bench.name for n in names)
    )


async def compute_score(
    data_source: str,
    solution_str: str,
    ground_truth: str,
    extra_info: Mapping[str, Any] | None = None,
    *,
    format_mode: str = "R1",
    judge_base_url: str | None = None,
    judge_model: str | None = None,
    judge_api_key: str | None = None,
    judge_api_key_env: str | None = None,
    judge_concurrency: int = 16,
    judge_timeout: float = 60.0,
    judge_retries: int = 2,
    judge_sources: Sequence[str] | None = None,
    judge_protocol: str = "paper",
    judge_max_tokens: int | None = None,
    judge_verdict_rule: str = "official",
    judge_endpoints: Mapping[str, Any] | None = None,
    unknown_source_answer_type: str | None = None,
    grade_timeout: float = DEFAULT_GRADE_TIMEOUT_S,
    **verl_kwargs: Any,
) -> dict[str, float]:
    """verl's custom reward for validation: ``score`` = ``acc`` in {0, 1}, plus the extra keys of ``Grade`` and
    ``graded`` (0.0 for a training rollout, marked by ``mark_training_rollouts``, which is returned ungraded).

    Configure through ``reward.custom_reward_function.reward_kwargs``: ``format_mode`` (``R1`` | ``R1_nothink``, for
    the ``format`` key), ``grade_timeout`` (seconds of wall clock for math-verify per sample),
    ``unknown_source_answer_type`` (how to grade a data source that is no benchmark and whose rows carry no
    ``answer_type``; unset, such a source is an error) and the judge: ``judge_base_url`` (e.g.
    ``http://host:8000/v1``), ``judge_model``, ``judge_api_key_env`` (the environment variable holding its API key; a
    literal ``judge_api_key`` is refused), ``judge_concurrency``, ``judge_timeout`` seconds,
    ``judge_retries``, ``judge_protocol`` (``paper``, the default, or ``answer``; see ``rlpr.evaluation.judge``),
    ``judge_max_tokens`` (default: the protocol's budget), ``judge_verdict_rule`` (``official``, the default, or
    ``lenient``: how a ``paper`` judge's boxed verdict is read), ``judge_endpoints`` (per-benchmark ``base_url`` /
    ``model`` / ``api_key_env`` over the defaults, e.g. a stronger judge for TheoremQA and Minerva), and
    ``judge_sources`` (limits the judge to those data sources).
    """
    unknown = set(verl_kwargs) - VERL_CALL_KWARGS
    if unknown:
        raise TypeError(f"compute_score got unknown keyword arguments {sorted(unknown)}")
    if judge_api_key is not None:
        raise literal_key_refused("judge_api_key", "judge_api_key_env")
    if (extra_info or {}).get(TRAINING_ROLLOUT):
        return dict(NOT_GRADED)
    judge = None
    if judge_sources is None or _named_in(data_source, judge_sources):
        base_url, model, key_env = endpoint_for(
            data_source, judge_base_url, judge_model, judge_api_key_env, judge_endpoints
        )
        bench = find_benchmark(data_source)
        setting = "reward_kwargs.judge_api_key_env"
        if key_env != judge_api_key_env and bench is not None:
            setting = f"reward_kwargs.judge_endpoints[{bench.name}].api_key_env"
        judge = judge_from_kwargs(
            base_url,
            model,
            key_from_environment(key_env, setting) if base_url else None,
            judge_concurrency,
            judge_timeout,
            judge_retries,
            judge_protocol,
            judge_max_tokens,
            judge_verdict_rule,
        )
    grade = await grade_response(
        data_source,
        solution_str,
        ground_truth,
        extra_info,
        format_mode=format_mode,
        judge=judge,
        grade_timeout=float(grade_timeout),
        unknown_source_answer_type=unknown_source_answer_type,
    )
    return grade.reward_dict()


if __name__ == "__main__":
    _serve_math_verify()
