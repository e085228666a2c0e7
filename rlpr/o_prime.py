"""Cutting a sampled response for o' and writing the short tails that get tokenized (RLPR.md §1.2, §1.4, §2).

o' keeps the sampled response tokens up to (not including) the token in which ``<answer>`` starts, then a tail string:
``<the characters of that token before <answer>>`` + ``<answer>`` + the whitespace the response put after
``<answer>`` (one space if none) + y* + `` </answer>`` + the eos token. ``<answer>`` is located by byte offsets of the
decoded tokens, never by token-id patterns (tags merge with their neighbours in BPE vocabularies). The debias
sequence is the prompt followed by ``" " + y* + " "`` (or ``<answer> y* </answer>``) and the eos token.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from rlpr.answer import ANSWER_CLOSE, ANSWER_OPEN, answer_start, whitespace_after_answer_tag
from rlpr.token_bytes import TokenBytes

_ANSWER_OPEN_BYTES = ANSWER_OPEN.encode()


@dataclass
class ParsedResponse:
    """A response cut for o': ``keep`` sampled response tokens, then ``tail`` (None when the response is invalid)."""

    text: str
    keep: int
    tail: str | None
    ref_span: tuple[int, int] | None


def cut_at_answer(
    raw: bytes, starts: np.ndarray, text: str, reference: str, mode: str, eos_token: str, origin: int = 0
) -> ParsedResponse:
    """Cut the response whose UTF-8 bytes are ``raw`` (``text`` decoded) and whose tokens start at the byte offsets
    ``starts`` (counted from ``origin``: a response cut out of a longer byte string keeps that string's offsets)."""
    if answer_start(text, mode) is None:
        return ParsedResponse(text, 0, None, None)
    tag_byte = raw.index(_ANSWER_OPEN_BYTES)  # the only one: answer_start checked it (ASCII counts match bytes)
    k = int(np.searchsorted(starts, origin + tag_byte, side="right")) - 1
    # step back to a token that starts on a character boundary, so the re-tokenized prefix is whole characters
    while k > 0 and (raw[starts[k] - origin] & 0xC0) == 0x80:
        k -= 1
    prefix = raw[starts[k] - origin : tag_byte].decode("utf-8", errors="replace")
    after = raw[tag_byte + len(_ANSWER_OPEN_BYTES) :].decode("utf-8", errors="ignore")
    head = prefix + ANSWER_OPEN + whitespace_after_answer_tag(after)
    tail = head + reference + " " + ANSWER_CLOSE + eos_token
    return ParsedResponse(text, k, tail, (len(head), len(head) + len(reference)))


def strip_special_end(ids: np.ndarray, special_ids: frozenset[int]) -> int:
    """The length of ``ids`` without its trailing special tokens (eos, padding): they are not response text."""
    end = len(ids)
    while end > 0 and int(ids[end - 1]) in special_ids:
        end -= 1
    return end


def parse_response(
    ids: Sequence[int] | np.ndarray, tb: TokenBytes, reference: str, mode: str, eos_token: str
) -> ParsedResponse:
    """Find ``<answer>`` by byte offsets in the sampled ``ids`` and build the o' tail string (see module docstring)."""
    ids = np.asarray(ids, dtype=np.int64)
    ids = ids[: strip_special_end(ids, tb.special_ids)]
    raw = tb.join(ids)
    lengths = tb.lengths[ids]
    return cut_at_answer(
        raw, np.cumsum(lengths) - lengths, raw.decode("utf-8", errors="replace"), reference, mode, eos_token
    )


def debias_tail(reference: str, eos_token: str, tagged: bool = False) -> tuple[str, tuple[int, int]]:
    """The r' continuation after the prompt and the character span of y* in it (RLPR.md §2)."""
    head = ANSWER_OPEN + " " if tagged else " "
    close = " " + ANSWER_CLOSE if tagged else " "
    return head + reference + close + eos_token, (len(head), len(head) + len(reference))


def overlap_mask(offsets: np.ndarray, spans: np.ndarray) -> np.ndarray:
    """Per token: does its (start, end) character span overlap its row's y* span (and is it non-empty)?

    ``offsets`` is (tokens, 2); ``spans`` is (tokens, 2), each token's row span repeated.
    """
    start, end = offsets[:, 0], offsets[:, 1]
    return (start < spans[:, 1]) & (end > spans[:, 0]) & (end > start)
