"""Cutting a sampled response for o' and writing the short tails that get tokenized (docs/rlpr.md#scoring-sequence).

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

from rlpr.answer import ANSWER_CLOSE, ANSWER_OPEN, THINK_CLOSE, THINK_OPEN, check_mode, whitespace_after_answer_tag
from rlpr.reward.token_bytes import TokenBytes

_ANSWER_OPEN_BYTES = ANSWER_OPEN.encode()
_SUFFIX_TOKENS = 64
# the tags a response must hold once each, in this order, to be valid for r (docs/rlpr.md#validity), as bytes
_REQUIRED_TAGS = {
    "R1": (THINK_OPEN.encode(), THINK_CLOSE.encode(), _ANSWER_OPEN_BYTES),
    "R1_nothink": (_ANSWER_OPEN_BYTES,),
}


def answer_byte(raw: bytes, mode: str) -> int | None:
    """``rlpr.answer.answer_start`` on the UTF-8 bytes of a response: the byte offset of ``<answer>`` if each tag the
    mode requires occurs exactly once and in order, else None.

    The tags are ASCII, and decoding (even with replacement characters) neither creates nor removes ASCII
    characters, so the counts and the order are those of the decoded text; bytes are searched faster than text.
    """
    positions = []
    for tag in _REQUIRED_TAGS[check_mode(mode)]:
        at = raw.find(tag)
        if at < 0 or raw.find(tag, at + 1) >= 0:  # absent, or present more than once
            return None
        positions.append(at)
    return positions[-1] if positions == sorted(positions) else None


@dataclass
class ParsedResponse:
    """A response cut for o': ``keep`` sampled response tokens, then ``tail`` (None when the response is invalid).

    ``text`` is the response without its trailing special tokens (what validity and the format reward read);
    ``plain`` is the response without any special token, wherever it stands, as ``decode(...,
    skip_special_tokens=True)`` gives it (what the official repetition penalty reads).
    """

    text: str
    keep: int
    tail: str | None
    ref_span: tuple[int, int] | None
    plain: str = ""


def parse_response(
    ids: Sequence[int] | np.ndarray, tb: TokenBytes, reference: str, mode: str, eos_token: str
) -> ParsedResponse:
    """Find ``<answer>`` by byte offsets in the sampled ``ids`` and build the o' tail string (see module docstring).

    Trailing special tokens (eos, padding) are not part of the response text.
    """
    ids = np.asarray(ids, dtype=np.int64)
    end = len(ids)
    while end > 0 and int(ids[end - 1]) in tb.special_ids:
        end -= 1
    ids = ids[:end]
    raw = tb.join(ids)
    text = raw.decode("utf-8", errors="replace")
    inner = tb.skipped[ids]
    plain = tb.join(ids[~inner]).decode("utf-8", errors="replace") if inner.any() else text
    tag_byte = answer_byte(raw, mode)
    if tag_byte is None:
        return ParsedResponse(text, 0, None, None, plain)
    # the token holding the tag's first byte (the last token that starts at or before it): walk back from the end,
    # since the answer is usually short; an answer longer than _SUFFIX_TOKENS tokens takes one cumulative sum instead
    n, table = len(ids), tb.table
    k, start = n, len(raw)
    for token in reversed(ids[max(0, n - _SUFFIX_TOKENS) :].tolist()):
        if start <= tag_byte:
            break
        k -= 1
        start -= len(table[token])
    if start > tag_byte:
        lengths = tb.lengths[ids[:k]]
        begins = lengths.cumsum() - lengths
        k = int(begins.searchsorted(tag_byte, side="right")) - 1
        start = int(begins[k])
    # step back to a token that starts on a character boundary, so the re-tokenized prefix is whole characters
    while k > 0 and (raw[start] & 0xC0) == 0x80:
        k -= 1
        start -= int(tb.lengths[ids[k]])
    prefix = raw[start:tag_byte].decode("utf-8", errors="replace")
    after = raw[tag_byte + len(_ANSWER_OPEN_BYTES) :].decode("utf-8", errors="ignore")
    head = prefix + ANSWER_OPEN + whitespace_after_answer_tag(after)
    tail = head + reference + " " + ANSWER_CLOSE + eos_token
    return ParsedResponse(text, k, tail, (len(head), len(head) + len(reference)), plain)


def debias_tail(reference: str, eos_token: str, tagged: bool = False) -> tuple[str, tuple[int, int]]:
    """The r' continuation after the prompt and the character span of y* in it (docs/rlpr.md#debias)."""
    head = ANSWER_OPEN + " " if tagged else " "
    close = " " + ANSWER_CLOSE if tagged else " "
    return head + reference + close + eos_token, (len(head), len(head) + len(reference))


def overlap_mask(offsets: np.ndarray, spans: np.ndarray) -> np.ndarray:
    """Per token: does its (start, end) character span overlap its row's y* span (and is it non-empty)?

    ``offsets`` is (tokens, 2); ``spans`` is (tokens, 2), each token's row span repeated.
    """
    start, end = offsets[:, 0], offsets[:, 1]
    return (start < spans[:, 1]) & (end > spans[:, 0]) & (end > start)
