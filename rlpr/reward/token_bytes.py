"""The exact bytes behind each token id, so responses are cut by byte offsets, never by token-id patterns."""

from __future__ import annotations

import json
import weakref
from collections.abc import Sequence
from typing import Any

import numpy as np
from transformers.convert_slow_tokenizer import bytes_to_unicode


class TokenBytes:
    """The exact bytes each token id stands for, for byte-level BPE and sentencepiece-style vocabularies.

    Concatenating the bytes of a token sequence gives the UTF-8 bytes of its text, so byte offsets of the decoded
    tokens are exact even when a token holds only part of a multi-byte character.
    """

    def __init__(self, tokenizer: Any) -> None:
        size = len(tokenizer)
        tokens = tokenizer.convert_ids_to_tokens(list(range(size)))
        added = {i: tok.content for i, tok in tokenizer.added_tokens_decoder.items()}
        decoder = json.loads(tokenizer.backend_tokenizer.to_str()).get("decoder") or {}
        byte_level = "ByteLevel" in json.dumps(decoder)
        inverse = {char: byte for byte, char in bytes_to_unicode().items()}
        table: list[bytes] = []
        for i, tok in enumerate(tokens):
            if i in added:
                table.append(added[i].encode())
            elif tok is None:
                table.append(b"")
            elif byte_level:
                table.append(bytes(inverse[c] for c in tok))
            elif len(tok) == 6 and tok.startswith("<0x") and tok.endswith(">"):  # sentencepiece byte fallback
                table.append(bytes([int(tok[3:5], 16)]))
            else:
                table.append(tok.replace("\u2581", " ").encode())
        self.table = table
        self.array = np.empty(size, dtype=object)  # the same bytes, for vectorised lookups of id arrays
        self.array[:] = table
        self.lengths = np.fromiter((len(b) for b in table), dtype=np.int64, count=size)
        self.special_ids = frozenset(tokenizer.all_special_ids)
        # what decode(..., skip_special_tokens=True) drops: every added token marked special (Qwen2.5: <|im_start|>,
        # <|vision_start|>, ...; more than all_special_ids, which lists only the named ones)
        skipped = {i for i, tok in tokenizer.added_tokens_decoder.items() if tok.special} | self.special_ids
        self.skipped = np.zeros(size, dtype=bool)
        self.skipped[[i for i in skipped if 0 <= i < size]] = True

    def join(self, ids: Sequence[int] | np.ndarray) -> bytes:
        return b"".join(self.array[np.asarray(ids, dtype=np.int64)].tolist())  # a list joins faster than an array


_TOKEN_BYTES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def token_bytes(tokenizer: Any) -> TokenBytes:
    """The (cached) ``TokenBytes`` table of ``tokenizer``."""
    found = _TOKEN_BYTES.get(tokenizer)
    if found is None:
        found = _TOKEN_BYTES[tokenizer] = TokenBytes(tokenizer)
    return found
