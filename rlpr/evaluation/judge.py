r"""An LLM judge behind any OpenAI-compatible endpoint (``POST {base_url}/chat/completions``), for validation.

Two protocols (``JudgeConfig.protocol``):

* ``paper`` (the default; the paper's official evaluation): the judge reads the question, the reference answer and
  the model's FULL response as generated, finds the final answer itself, and ends its reply with a boxed verdict:
  ``\boxed{Y}`` / ``\boxed{N}`` for free-form answers, the letter of the option the response chose (``\boxed{C}``,
  or ``\boxed{none}``) for multiple-choice questions, which is then compared with the reference letter. It may reason
  first: the generation budget is ``PAPER_MAX_TOKENS`` (12,288) and the verdict is the reply's last box.
* ``answer`` (this project's earlier protocol): the judge sees only the extracted answer next to the reference and
  replies with one word, YES or NO (``ANSWER_MAX_TOKENS``); multiple-choice questions are not judged.

The requests go through ``rlpr.evaluation.chat_client.ChatClient``: a try that fails (connection error, timeout, a busy
server's status, unreadable reply, no verdict) is made again up to ``retries`` times; when no try gives a verdict, or
the server refuses the request, ``LLMJudge.judge`` raises ``JudgeError`` so the caller can count the failure instead
of scoring it 0.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import partial

from rlpr.evaluation.chat_client import ChatClient, ChatError

JUDGE_PROTOCOLS = ("paper", "answer")
PAPER_MAX_TOKENS = 12288
ANSWER_MAX_TOKENS = 8

JUDGE_SYSTEM_PROMPT = (
    "You grade answers to exam questions. You are shown a question, the reference answer, and a candidate answer "
    "written by a student. Decide whether the candidate answer says the same thing as the reference answer. Accept "
    "equivalent forms (another notation, an equal number or expression, rounding consistent with the reference, "
    "different wording of the same fact, units written differently). Reject answers that are incomplete, hedge "
    "between several options, or differ in substance. Do not solve the question yourself beyond what you need to "
    "compare the two answers. Reply with a single word: YES if the candidate answer is correct, NO otherwise."
)

PAPER_SYSTEM_PROMPT = (
    "You check a student's response to an exam question. You are shown the question, the reference answer, and the "
    "student's whole response, reasoning included. Find the final answer the response commits to and decide whether "
    "it is equivalent to the reference answer: accept another notation, an equal number or expression, rounding "
    "consistent with the reference, other wording of the same fact, units written differently. A response that "
    "commits to no final answer, hedges between several, or differs in substance is wrong. Think as briefly as you "
    "can, then end your reply with \\boxed{Y} if the final answer is correct or \\boxed{N} if it is not."
)

PAPER_CHOICE_SYSTEM_PROMPT = (
    "You read a student's response to a multiple-choice question. You are shown the question with its lettered "
    "options, the reference answer, and the student's whole response, reasoning included. Find the one option the "
    "response finally chooses, whether it names the option by its letter or by its text. Report what the response "
    "chose, not what you think is right. Think as briefly as you can, then end your reply with that option's letter "
    "in a box, for example \\boxed{C}, or with \\boxed{none} if the response chooses no single option."
)

_VERDICT = re.compile(r"^\W*(YES|NO)\b", re.IGNORECASE)
_LETTER = re.compile(r"\(?([A-Pa-p])\)?\.?")
_NO_CHOICE = "none"


class JudgeError(ValueError):
    """The judge gave no usable verdict: a reply without one (which the chat client retries), or no reply after all
    tries."""


@dataclass(frozen=True)
class JudgeConfig:
    """Where the judge is served and how hard to push it.

    ``base_url`` is the API root that ``/chat/completions`` is appended to (e.g. ``http://host:8000/v1``);
    ``concurrency`` bounds the requests in flight per event loop; ``timeout_s`` applies to each request;
    ``retries`` is the number of extra tries after a failed one, the n-th after ``retry_delay_s * 2**(n - 1)`` s.
    """

    base_url: str
    model: str
    api_key: str | None = None
    concurrency: int = 16
    timeout_s: float = 60.0
    retries: int = 2
    retry_delay_s: float = 1.0
    protocol: str = "paper"
    max_tokens: int | None = None  # None: the protocol's budget (PAPER_MAX_TOKENS or ANSWER_MAX_TOKENS)

    def __post_init__(self) -> None:
        try:
            self.client()  # checks the endpoint settings
        except ValueError as error:
            raise ValueError(f"judge {error}") from error
        if self.protocol not in JUDGE_PROTOCOLS:
            raise ValueError(f"judge protocol must be one of {JUDGE_PROTOCOLS}, got {self.protocol!r}")
        if self.max_tokens is not None and (not isinstance(self.max_tokens, int) or self.max_tokens < 1):
            raise ValueError(f"judge max_tokens must be a positive int or None, got {self.max_tokens!r}")

    @property
    def budget(self) -> int:
        """The judge's generation budget in tokens."""
        if self.max_tokens is not None:
            return self.max_tokens
        return PAPER_MAX_TOKENS if self.protocol == "paper" else ANSWER_MAX_TOKENS

    def client(self) -> ChatClient:
        """The chat client of the judge's endpoint."""
        return ChatClient(
            self.base_url,
            self.model,
            api_key=self.api_key,
            timeout=self.timeout_s,
            retries=self.retries,
            backoff=self.retry_delay_s,
            concurrency=self.concurrency,
        )


def judge_messages(question: str, reference: str, candidate: str) -> list[dict[str, str]]:
    """The chat messages of the ``answer`` protocol: the extracted ``candidate`` answer against the reference."""
    user = (
        f"Question:\n{question}\n\nReference answer:\n{reference}\n\nCandidate answer:\n{candidate}\n\n"
        "Is the candidate answer correct? Reply YES or NO."
    )
    return [{"role": "system", "content": JUDGE_SYSTEM_PROMPT}, {"role": "user", "content": user}]


def paper_messages(question: str, reference: str, response: str, multiple_choice: bool) -> list[dict[str, str]]:
    """The chat messages of the ``paper`` protocol: the model's full ``response`` against the reference."""
    ask = (
        "Which option does the response choose? End with its letter boxed."
        if multiple_choice
        else "Is the response's final answer correct? End with \\boxed{Y} or \\boxed{N}."
    )
    user = f"Question:\n{question}\n\nReference answer:\n{reference}\n\nStudent's response:\n{response}\n\n{ask}"
    system = PAPER_CHOICE_SYSTEM_PROMPT if multiple_choice else PAPER_SYSTEM_PROMPT
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


def parse_verdict(reply: str) -> bool:
    """``answer`` protocol: True for a reply starting with YES, False for NO (any case, leading punctuation
    allowed); else JudgeError."""
    found = _VERDICT.match(reply) if isinstance(reply, str) else None
    if found is None:
        raise JudgeError(f"judge reply is neither YES nor NO: {reply!r}")
    return found.group(1).upper() == "YES"


def last_box(text: str) -> str | None:
    r"""The content of the last ``\boxed{...}`` of ``text`` (balanced braces), else None."""
    start = text.rfind("\\boxed{")
    if start < 0:
        return None
    depth, i = 0, start + len("\\boxed")
    for j in range(i, len(text)):
        depth += {"{": 1, "}": -1}.get(text[j], 0)
        if depth == 0:
            return text[i + 1 : j]
    return None


def option_letter(text: str) -> str | None:
    """The option letter (A-P) that ``text`` is, as in ``B``, ``(b)`` or ``B.``; else None."""
    found = _LETTER.fullmatch(text.strip()) if isinstance(text, str) else None
    return found.group(1).upper() if found else None


def parse_paper_verdict(reply: str, reference: str, multiple_choice: bool) -> bool:
    """``paper`` protocol: the reply's last box. Free form: ``Y`` / ``N`` (or YES / NO, any case). Multiple choice:
    an option letter, correct iff it is the ``reference`` letter (``none``: no option chosen, wrong). Anything else
    raises JudgeError."""
    box = last_box(reply) if isinstance(reply, str) else None
    verdict = box.strip().strip("$").strip() if box is not None else None
    if verdict is not None and multiple_choice:
        if verdict.lower() == _NO_CHOICE:
            return False
        letter = option_letter(verdict)
        if letter is not None:
            return letter == option_letter(reference)
    elif verdict is not None and verdict.upper() in ("Y", "N", "YES", "NO"):
        return verdict.upper().startswith("Y")
    wanted = "an option letter or none" if multiple_choice else "Y or N"
    raise JudgeError(f"judge reply does not end with a boxed {wanted}: {str(reply)[-200:]!r}")


class LLMJudge:
    """Asks the endpoint of ``config`` for a verdict; at most ``config.concurrency`` requests at once per loop."""

    def __init__(self, config: JudgeConfig):
        self.config = config
        self.client = config.client()

    async def judge(self, question: str, reference: str, candidate: str, *, multiple_choice: bool = False) -> bool:
        """Whether ``candidate`` is correct. ``paper`` protocol: ``candidate`` is the model's full response; a
        ``multiple_choice`` question's ``reference`` must be an option letter. ``answer`` protocol: ``candidate`` is
        the extracted answer (``multiple_choice`` is refused: a letter needs no judge)."""
        cfg = self.config
        if cfg.protocol == "paper":
            if multiple_choice and option_letter(reference) is None:
                raise ValueError(f"a multiple-choice reference must be an option letter A-P, got {reference!r}")
            messages = paper_messages(question, reference, candidate, multiple_choice)
            parse = partial(parse_paper_verdict, reference=reference, multiple_choice=multiple_choice)
        else:
            if multiple_choice:
                raise ValueError("the 'answer' judge protocol does not judge multiple-choice questions")
            messages, parse = judge_messages(question, reference, candidate), parse_verdict
        try:
            return await self.client.acomplete(self.client.payload(messages, max_tokens=cfg.budget), parse)
        except ChatError as error:
            raise JudgeError(f"judge: {error}") from error
