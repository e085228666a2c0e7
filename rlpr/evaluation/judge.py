r"""An LLM judge behind any OpenAI-compatible endpoint (``POST {base_url}/chat/completions``), for validation.

Two protocols (``JudgeConfig.protocol``):

* ``paper`` (the default; the paper's official evaluation): the judge reads the question and the model's FULL
  response as generated, never solves the problem itself, and ends its reply with a boxed verdict. Free-form
  questions: it also reads the reference answer and boxes ``Y`` or ``N``. Multiple-choice questions: it never sees the
  reference; it boxes the letter of the option the response chose (the most likely one when the response only implies
  it; ``none`` when it points to none), and that letter is compared with the reference letter here. It may reason
  first: the generation budget is ``PAPER_MAX_TOKENS`` (12,288). ``JudgeConfig.verdict_rule`` says how the verdict is
  read (``parse_paper_verdict``): ``official`` (the default) takes the last box holding a single letter, any case,
  as the official code does; ``lenient`` takes the last box of any content and accepts more spellings.
* ``answer`` (this project's earlier protocol): the judge sees only the extracted answer next to the reference and
  replies with one word, YES or NO (``ANSWER_MAX_TOKENS``); multiple-choice questions are not judged.

The requests go through ``harness.chat_client.ChatClient``: a try that fails (connection error, timeout, a busy
server's status, unreadable reply, no verdict) is made again up to ``retries`` times; when no try gives a verdict, or
the server refuses the request, ``LLMJudge.judge`` raises ``JudgeError`` so the caller can count the failure instead
of scoring it 0.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import partial

from harness.chat_client import ChatClient, ChatError

JUDGE_PROTOCOLS = ("paper", "answer")
VERDICT_RULES = ("official", "lenient")
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
    "You check a student's response to an exam question. You are shown the question, the student's whole response, "
    "reasoning included, and the reference answer. Do not work the problem out yourself: your only task is to pull "
    "out the final answer the response gives and decide whether it agrees with the reference answer. Accept another "
    "notation, an equal number or expression, rounding consistent with the reference, other wording of the same "
    "fact, units written differently. A response that commits to no final answer, hedges between several, or "
    "differs in substance is wrong. Think as briefly as you can, then end your reply with \\boxed{Y} if the final "
    "answer agrees with the reference or \\boxed{N} if it does not."
)

PAPER_CHOICE_SYSTEM_PROMPT = (
    "You read a student's response to a multiple-choice question. You are shown the question with its lettered "
    "options and the student's whole response, reasoning included. Do not work the problem out yourself and do not "
    "judge whether the choice is right: your only task is to find the one option the response finally picks, "
    "whether it names the option by its letter or by its text. When the response names no option outright but its "
    "answer points to one, take the option it most likely means. Reason step by step, then end your reply with "
    "that option's letter in a box, for example \\boxed{C}, or with \\boxed{none} if the response points to "
    "no single option."
)

_VERDICT = re.compile(r"^\W*(YES|NO)\b", re.IGNORECASE)
_LETTER = re.compile(r"\(?([A-Pa-p])\)?\.?")
_LETTER_BOX = re.compile(r"\\boxed\{([a-z])\}")  # matched on the lower-cased reply: the official reading
_NO_CHOICE = "none"
_NO_CHOICE_WORDS = (_NO_CHOICE, "unclear")


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
    verdict_rule: str = "official"  # paper protocol: how the boxed verdict is read (parse_paper_verdict)

    def __post_init__(self) -> None:
        try:
            self.client()  # checks the endpoint settings
        except ValueError as error:
            raise ValueError(f"judge {error}") from error
        if self.protocol not in JUDGE_PROTOCOLS:
            raise ValueError(f"judge protocol must be one of {JUDGE_PROTOCOLS}, got {self.protocol!r}")
        if self.verdict_rule not in VERDICT_RULES:
            raise ValueError(f"judge verdict_rule must be one of {VERDICT_RULES}, got {self.verdict_rule!r}")
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
    """The chat messages of the ``paper`` protocol: the model's full ``response``. A free-form question's judge also
    gets the reference answer; a multiple-choice judge never does (it only names the option the response chose)."""
    if multiple_choice:
        ask = "Which option does the response choose? End with its letter boxed."
        user = f"Question:\n{question}\n\nStudent's response:\n{response}\n\n{ask}"
        return [{"role": "system", "content": PAPER_CHOICE_SYSTEM_PROMPT}, {"role": "user", "content": user}]
    ask = "Does the response's final answer agree with the reference answer? End with \\boxed{Y} or \\boxed{N}."
    user = f"Question:\n{question}\n\nStudent's response:\n{response}\n\nReference answer:\n{reference}\n\n{ask}"
    return [{"role": "system", "content": PAPER_SYSTEM_PROMPT}, {"role": "user", "content": user}]


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


def official_box_letter(reply: str) -> str | None:
    r"""The official reading of a judge's reply: the last ``\boxed{x}`` whose content is one letter, any case
    (upper-cased), wherever it stands; None if the reply has none. Boxes of any other content (``\boxed{ Y }``,
    ``\boxed{YES}``, ``\boxed{(B)}``, ``\boxed{\text{Y}}``) are passed over."""
    found = _LETTER_BOX.findall(reply.lower())
    return found[-1].upper() if found else None


def parse_paper_verdict(reply: str, reference: str, multiple_choice: bool, rule: str = "official") -> bool:
    """``paper`` protocol: whether the judge's ``reply`` accepts the response.

    ``official`` (the default, the paper's evaluation code): the letter of ``official_box_letter``. Free form:
    correct iff it is Y (any other letter is a no); multiple choice: correct iff it is the ``reference`` letter.
    ``lenient`` (this project's earlier reading): the reply's LAST box of any content, stripped of spaces and ``$``.
    Free form: ``Y`` / ``N`` / ``YES`` / ``NO`` (any case); multiple choice: an option letter as in ``B``, ``(b)``
    or ``B.``, correct iff it is the ``reference`` letter.

    A multiple-choice reply whose (last) box says ``none`` or ``unclear`` is a no under both rules. Any other reply
    without a verdict raises JudgeError (the chat client asks again; the official code scores such a reply wrong
    at once, which the retries only delay).
    """
    if rule not in VERDICT_RULES:
        raise ValueError(f"verdict rule must be one of {VERDICT_RULES}, got {rule!r}")
    box = last_box(reply) if isinstance(reply, str) else None
    verdict = box.strip().strip("$").strip() if box is not None else None
    if rule == "official" and isinstance(reply, str):
        letter = official_box_letter(reply)
        if letter is not None:
            return letter == option_letter(reference) if multiple_choice else letter == "Y"
    elif verdict is not None and multiple_choice:
        letter = option_letter(verdict)
        if letter is not None:
            return letter == option_letter(reference)
    elif verdict is not None and verdict.upper() in ("Y", "N", "YES", "NO"):
        return verdict.upper().startswith("Y")
    if multiple_choice and verdict is not None and verdict.lower() in _NO_CHOICE_WORDS:
        return False
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
            parse = partial(
                parse_paper_verdict, reference=reference, multiple_choice=multiple_choice, rule=cfg.verdict_rule
            )
        else:
            if multiple_choice:
                raise ValueError("the 'answer' judge protocol does not judge multiple-choice questions")
            messages, parse = judge_messages(question, reference, candidate), parse_verdict
        try:
            return await self.client.acomplete(self.client.payload(messages, max_tokens=cfg.budget), parse)
        except ChatError as error:
            raise JudgeError(f"judge: {error}") from error
