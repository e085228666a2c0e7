"""Answer parsing, the format reward and the repetition penalty of RLPR (docs/rlpr.md#validity, #final-reward).

Responses follow the R1 template ``<think> z </think> <answer> y </answer>``. Two questions are asked of a response:

* is it valid for a probability reward (``answer_start``): ``R1`` needs exactly one ``<think>``, one ``</think>`` and
  one ``<answer>`` in that order (text before ``<think>`` tolerated, ``</answer>`` not required, so a response cut off
  after ``<answer>`` still counts); ``R1_nothink`` needs exactly one ``<answer>``;
* does it earn the format reward F (``format_reward``): stricter, every tag exactly once, in order, with ``</answer>``.
"""

from __future__ import annotations

import re
from collections import Counter

import numpy as np

THINK_OPEN = "<think>"
THINK_CLOSE = "</think>"
ANSWER_OPEN = "<answer>"
ANSWER_CLOSE = "</answer>"

FORMAT_MODES = ("R1", "R1_nothink")


def check_mode(mode: str) -> str:
    if mode not in FORMAT_MODES:
        raise ValueError(f"unknown format mode {mode!r}; expected one of {FORMAT_MODES}")
    return mode


def _check_text(name: str, text: object) -> str:
    if not isinstance(text, str):
        raise ValueError(f"{name} must be a str, got {type(text).__name__}")
    return text


def _in_order(text: str, tags: tuple[str, ...]) -> bool:
    """Each tag occurs exactly once and the occurrences are in the given order."""
    if any(text.count(tag) != 1 for tag in tags):
        return False
    positions = [text.index(tag) for tag in tags]
    return positions == sorted(positions)


def answer_start(response: str, mode: str = "R1") -> int | None:
    """Index of ``<answer>`` in ``response`` if the response is valid for a probability reward, else None."""
    response = _check_text("response", response)
    tags = (THINK_OPEN, THINK_CLOSE, ANSWER_OPEN) if check_mode(mode) == "R1" else (ANSWER_OPEN,)
    return response.index(ANSWER_OPEN) if _in_order(response, tags) else None


def format_reward(response: str, mode: str = "R1") -> float:
    """F in {0, 1}.

    ``R1``: 1.0 iff ``response`` starts with ``<think>`` and holds ``<think>``, ``</think>``, ``<answer>``,
    ``</answer>`` exactly once each, in that order. ``R1_nothink``: 1.0 iff ``<answer>`` and ``</answer>`` occur
    exactly once each, in that order.
    """
    response = _check_text("response", response)
    if check_mode(mode) == "R1":
        ok = response.startswith(THINK_OPEN) and _in_order(
            response, (THINK_OPEN, THINK_CLOSE, ANSWER_OPEN, ANSWER_CLOSE)
        )
    else:
        ok = _in_order(response, (ANSWER_OPEN, ANSWER_CLOSE))
    return 1.0 if ok else 0.0


WORD_SPLIT_RULES = ("official", "drop_empty")


def repetition_words(text: str, split_rule: str = "official") -> list[str]:
    """The words the repetition penalty counts: a whitespace split, then each piece split on ``_``.

    ``official`` (the reference implementation's rule, the default) keeps the empty strings that the ``_`` split
    produces, so ``__init__`` is 5 words (``"", "", "init", "", ""``) and a blank of n underscores is n + 1 empty
    words; ``drop_empty`` (this project's earlier rule) drops them, so both count as 1 and 0 words.
    """
    if split_rule == "official":
        return [part for word in text.split() for part in word.split("_")]
    if split_rule == "drop_empty":
        return [w for w in _WORD_SEPARATORS.split(text) if w]
    raise ValueError(f"unknown repetition split_rule {split_rule!r}; expected one of {WORD_SPLIT_RULES}")


def repetition_penalty(text: str, window: int = 10, limit: int = 10, split_rule: str = "official") -> float:
    """P in {0, -1}: -1.0 iff some run of ``window`` consecutive words occurs at least ``limit`` times in ``text``.

    Words come from ``repetition_words(text, split_rule)``; a text of at most ``window`` words never repeats.
    Occurrences may overlap (``a a a ...`` repeats the window ``a a ... a`` at every offset).
    """
    text = _check_text("text", text)
    if not isinstance(window, int) or window < 1:
        raise ValueError(f"window must be a positive int, got {window!r}")
    if not isinstance(limit, int) or limit < 1:
        raise ValueError(f"limit must be a positive int, got {limit!r}")
    words = repetition_words(text, split_rule)
    if len(words) <= window:
        return 0.0
    # Fast rejection: identical windows have identical hashes, so if no hash occurs `limit` times no window does.
    vocabulary: dict[str, int] = {}
    ids = np.array([vocabulary.setdefault(w, len(vocabulary)) for w in words], dtype=np.uint64)
    weights = np.power(np.uint64(1_000_003), np.arange(window, dtype=np.uint64))  # wraps mod 2**64
    hashes = np.lib.stride_tricks.sliding_window_view(ids, window) @ weights
    if np.unique(hashes, return_counts=True)[1].max() < limit:
        return 0.0
    counts = Counter(tuple(words[i : i + window]) for i in range(len(words) - window + 1))
    return -1.0 if max(counts.values()) >= limit else 0.0


_WORD_SEPARATORS = re.compile(r"[\s_]+")
_LEADING_SPACE = re.compile(r"\s*")


def whitespace_after_answer_tag(response_after_tag: str) -> str:
    """The whitespace the response put right after ``<answer>`` (one space if none): it is kept in o'."""
    found = _LEADING_SPACE.match(response_after_tag).group(0)
    return found or " "
