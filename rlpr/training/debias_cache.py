"""The on-disk cache of the debias term r' for ``rlpr.debias.mode: initial`` (docs/rlpr.md#debias).

In mode ``initial`` r' is the initial policy's f_seq of the reference answer y* given the prompt x with no reasoning.
It depends only on (x, y*), so it is computed once per training prompt before the first step and looked up by
``prompt_key(prompt token ids, y*)`` afterwards. The initial weights are gone after step 1, so the cache is written
to a file in the run's output directory and found there again when a run resumes: it is never recomputed, and a
prompt missing from it is an error that names the prompt.

File format: JSON ``{"format": 1, "meta": {...}, "entries": {key: r'}}``. ``meta`` holds the settings that r' was
computed with (score method, tagged or not, temperature, model); loading a file whose ``meta`` differs from the
run's is an error, since its values would silently mean something else.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import struct
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from harness.files import write_text_atomically

FORMAT_VERSION = 1
MetaValue = str | int | float | bool | None


def prompt_key(prompt_ids: Sequence[int], reference: str) -> str:
    """sha256 (hex) of the prompt's token ids and the reference answer y*: the cache key of one r' value.

    The ids are hashed as a length-prefixed run of little-endian int64, then y* as UTF-8, so no two different
    (ids, y*) pairs share an encoding.
    """
    if not isinstance(reference, str):
        raise TypeError(f"reference must be a string, got {type(reference).__name__}: {reference!r}")
    ids = [int(i) for i in prompt_ids]
    digest = hashlib.sha256()
    digest.update(struct.pack("<q", len(ids)))
    digest.update(struct.pack(f"<{len(ids)}q", *ids))
    digest.update(reference.encode("utf-8"))
    return digest.hexdigest()


class DebiasCacheMiss(KeyError):
    """Prompts whose r' is not in the cache; the message names each of them."""

    def __str__(self) -> str:
        return str(self.args[0])


class DebiasCache:
    """r' per prompt key, persisted as a JSON file at ``path``.

    Args:
        path: where the cache lives (a file in the run's output directory); ``load`` reads it, ``save`` writes it.
        meta: the settings r' is computed with; stored in the file and compared on ``load``.
    """

    def __init__(self, path: str | os.PathLike[str], meta: Mapping[str, MetaValue] | None = None) -> None:
        self.path = Path(path)
        self.meta: dict[str, MetaValue] = dict(meta or {})
        self._entries: dict[str, float] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def missing(self, keys: Sequence[str]) -> list[str]:
        """The keys among ``keys`` that have no r' yet, in order, without duplicates."""
        return list(dict.fromkeys(k for k in keys if k not in self._entries))

    def put_many(self, keys: Sequence[str], values: Sequence[float]) -> None:
        """Store r' values; a key already present must get the same value (r' of the initial policy is fixed)."""
        if len(keys) != len(values):
            raise ValueError(f"put_many got {len(keys)} keys but {len(values)} values")
        for key, value in zip(keys, values):
            value = float(value)
            if not math.isfinite(value):
                raise ValueError(f"r' for prompt key {key} is not finite: {value}")
            old = self._entries.get(key)
            if old is not None and old != value:
                raise ValueError(
                    f"r' for prompt key {key} is already cached as {old}, refusing to overwrite it with {value}"
                )
            self._entries[key] = value

    def get_many(self, keys: Sequence[str], names: Sequence[str] | None = None) -> list[float]:
        """r' for each key; raises ``DebiasCacheMiss`` naming every missing prompt.

        ``names[i]`` describes the prompt of ``keys[i]`` for that message (e.g. its dataset index and opening words).
        """
        if names is not None and len(names) != len(keys):
            raise ValueError(f"get_many got {len(keys)} keys but {len(names)} names")
        absent = [i for i, key in enumerate(keys) if key not in self._entries]
        if absent:
            listed = "; ".join(
                f"{names[i]} (key {keys[i][:16]})" if names is not None else f"key {keys[i]}" for i in absent[:20]
            )
            more = f" and {len(absent) - 20} more" if len(absent) > 20 else ""
            raise DebiasCacheMiss(
                f"the r' cache {self.path} ({len(self)} entries) has no value for {len(absent)} of {len(keys)} "
                f"prompts: {listed}{more}. In debias mode 'initial' r' is computed for every training prompt before "
                "the first step; prompts added to the data after that have no r' from the initial policy."
            )
        return [self._entries[key] for key in keys]

    def state_dict(self) -> dict[str, Any]:
        """Plain-Python state: format version, meta and all entries."""
        return {"format": FORMAT_VERSION, "meta": dict(self.meta), "entries": dict(self._entries)}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Replace the entries with those of ``state``; its meta must equal this cache's meta."""
        if state.get("format") != FORMAT_VERSION:
            raise ValueError(f"r' cache state has format {state.get('format')!r}, expected {FORMAT_VERSION}")
        stored_meta = dict(state.get("meta") or {})
        if stored_meta != self.meta:
            diff = {
                k: (stored_meta.get(k), self.meta.get(k))
                for k in sorted(set(stored_meta) | set(self.meta))
                if stored_meta.get(k) != self.meta.get(k)
            }
            raise ValueError(
                f"the r' cache {self.path} was computed with other settings (stored, now): {diff}; "
                "delete it or point rlpr.debias.cache_path elsewhere to recompute r'"
            )
        entries = state["entries"]
        self._entries = {}
        self.put_many(list(entries), list(entries.values()))

    def save(self) -> None:
        """Write the cache to ``path`` atomically (a temporary file, then a rename)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomically(self.path, json.dumps(self.state_dict()))

    def load(self) -> bool:
        """Read ``path`` if it exists (True) or leave the cache empty (False)."""
        if not self.path.exists():
            return False
        try:
            state = json.loads(self.path.read_text())
        except json.JSONDecodeError as err:
            raise ValueError(f"the r' cache {self.path} is not valid JSON: {err}") from err
        self.load_state_dict(state)
        return True
