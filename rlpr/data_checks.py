"""Early checks of RLPR training rows, so bad data fails before the first step with the row named.

A row (docs/data_formats.md#rlpr-training-rows) is bad when
* it has no reference answer: ``reward_model.ground_truth`` missing, not a string, or blank (r would be computed over
  an empty y* and be 0 for every response);
* its prompt is empty: no messages, or only blank message contents (or a blank string prompt);
* its prompt is longer than ``data.max_prompt_length`` tokens once the tokenizer's chat template is applied with the
  generation prompt (as verl's ``RLHFDataset`` counts it).

Policy ``error`` raises ``BadDataError`` listing the bad rows; policy ``filter`` drops them, logs them and reports
how many were dropped for which reason (``CheckedRows.counts``).
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

POLICIES = ("filter", "error")
NO_REFERENCE = "no_reference"
EMPTY_PROMPT = "empty_prompt"
PROMPT_TOO_LONG = "prompt_too_long"
_SHOWN = 20
_CHUNK = 512


class BadDataError(ValueError):
    """Training rows that fail the checks under policy ``error``; the message names each row."""


@dataclass(frozen=True)
class BadRow:
    """One rejected row: where it is (``source`` and 0-based ``index``), which check failed, and the details."""

    source: str
    index: int
    reason: str
    detail: str

    def __str__(self) -> str:
        return f"{self.source} row {self.index}: {self.reason} ({self.detail})"


@dataclass
class CheckedRows:
    """The rows that passed (in their original order) and the rows that did not."""

    rows: list[dict[str, Any]]
    kept_indices: list[int]
    bad: list[BadRow] = field(default_factory=list)

    @property
    def counts(self) -> dict[str, int]:
        """Number of dropped rows per reason (for the logs and metrics)."""
        return dict(Counter(b.reason for b in self.bad))


def check_policy(policy: str) -> str:
    if policy not in POLICIES:
        raise ValueError(f"unknown bad-prompt policy {policy!r}; expected one of {POLICIES}")
    return policy


def _reference_problem(row: Mapping[str, Any]) -> str | None:
    reward_model = row.get("reward_model")
    if not isinstance(reward_model, Mapping):
        return f"reward_model is {type(reward_model).__name__}, expected a dict with a string ground_truth"
    truth = reward_model.get("ground_truth")
    if not isinstance(truth, str):
        return f"reward_model.ground_truth is {type(truth).__name__} {truth!r}, expected a string"
    if not truth.strip():
        return f"reward_model.ground_truth is blank: {truth!r}"
    return None


def _prompt_problem(prompt: Any, prompt_key: str) -> str | None:
    if isinstance(prompt, str):
        return None if prompt.strip() else f"{prompt_key} is a blank string"
    if not isinstance(prompt, Sequence) or not prompt:
        return f"{prompt_key} is {prompt!r}, expected a non-empty list of chat messages"
    for i, message in enumerate(prompt):
        if not isinstance(message, Mapping) or not isinstance(message.get("content"), str) or "role" not in message:
            return f"{prompt_key}[{i}] is {message!r}, expected {{'role': ..., 'content': <string>}}"
    if not any(message["content"].strip() for message in prompt):
        return f"every message of {prompt_key} has blank content"
    return None


def _as_messages(prompt: str | Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    return [{"role": "user", "content": prompt}] if isinstance(prompt, str) else [dict(m) for m in prompt]


def prompt_lengths(
    prompts: Sequence[str | Sequence[Mapping[str, Any]]],
    tokenizer: Any,
    chat_template_kwargs: Mapping[str, Any] | None = None,
) -> list[int]:
    """Token count of each prompt after the chat template with the generation prompt (a string is one user turn)."""
    lengths: list[int] = []
    kwargs = dict(chat_template_kwargs or {})
    for start in range(0, len(prompts), _CHUNK):
        texts = [
            tokenizer.apply_chat_template(_as_messages(p), add_generation_prompt=True, tokenize=False, **kwargs)
            for p in prompts[start : start + _CHUNK]
        ]
        lengths.extend(len(ids) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"])
    return lengths


def _find_bad(
    rows: Sequence[Mapping[str, Any]],
    tokenizer: Any,
    max_prompt_length: int,
    prompt_key: str,
    chat_template_kwargs: Mapping[str, Any] | None,
    source: str,
) -> tuple[list[int], list[BadRow]]:
    bad: list[BadRow] = []
    well_formed: list[int] = []
    for i, row in enumerate(rows):
        if not isinstance(row, Mapping):
            bad.append(BadRow(source, i, NO_REFERENCE, f"row is {type(row).__name__}, expected a dict"))
            continue
        problem = _reference_problem(row)
        if problem is not None:
            bad.append(BadRow(source, i, NO_REFERENCE, problem))
            continue
        problem = _prompt_problem(row.get(prompt_key), prompt_key)
        if problem is not None:
            bad.append(BadRow(source, i, EMPTY_PROMPT, problem))
            continue
        well_formed.append(i)

    lengths = prompt_lengths([rows[i][prompt_key] for i in well_formed], tokenizer, chat_template_kwargs)
    kept: list[int] = []
    for i, length in zip(well_formed, lengths):
        if length > max_prompt_length:
            detail = f"{length} tokens after the chat template > data.max_prompt_length={max_prompt_length}"
            bad.append(BadRow(source, i, PROMPT_TOO_LONG, detail))
        else:
            kept.append(i)
    bad.sort(key=lambda b: b.index)
    return kept, bad


def _apply_policy(bad: list[BadRow], total: int, where: str, policy: str) -> None:
    if not bad:
        return
    shown = "\n  ".join(str(b) for b in bad[:_SHOWN])
    more = f"\n  ... and {len(bad) - _SHOWN} more" if len(bad) > _SHOWN else ""
    counts = dict(Counter(b.reason for b in bad))
    summary = f"{len(bad)} of {total} training rows in {where} are bad {counts}:\n  {shown}{more}"
    if policy == "error":
        raise BadDataError(f"{summary}\nFix the data, or set rlpr.bad_prompt_policy=filter to drop such rows.")
    logger.warning("dropping %s", summary)


def _check_length(max_prompt_length: int) -> int:
    if isinstance(max_prompt_length, bool) or int(max_prompt_length) != max_prompt_length or max_prompt_length < 1:
        raise ValueError(f"max_prompt_length must be a positive integer, got {max_prompt_length!r}")
    return int(max_prompt_length)


def check_rows(
    rows: Sequence[Mapping[str, Any]],
    tokenizer: Any,
    max_prompt_length: int,
    policy: str = "error",
    *,
    prompt_key: str = "prompt",
    chat_template_kwargs: Mapping[str, Any] | None = None,
    source: str = "rows",
) -> CheckedRows:
    """Check every row (see the module docstring); raise ``BadDataError`` (policy ``error``) or drop the bad rows.

    ``source`` names the rows in messages (a file path); a row is named by its 0-based index in ``rows``.
    """
    check_policy(policy)
    max_prompt_length = _check_length(max_prompt_length)
    kept, bad = _find_bad(rows, tokenizer, max_prompt_length, prompt_key, chat_template_kwargs, source)
    _apply_policy(bad, len(rows), source, policy)
    return CheckedRows(rows=[dict(rows[i]) for i in kept], kept_indices=kept, bad=bad)


def read_rows(path: str | Path) -> list[dict[str, Any]]:
    """The rows of a ``.parquet``, ``.jsonl`` or ``.json`` (a list of rows) file as plain Python dicts."""
    path = Path(path).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"data file {path} does not exist")
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        return pq.read_table(path).to_pylist()
    if path.suffix == ".jsonl":
        rows = []
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as err:
                    raise ValueError(f"{path} line {number} is not valid JSON: {err}") from err
        return rows
    if path.suffix == ".json":
        rows = json.loads(path.read_text())
        if not isinstance(rows, list):
            raise ValueError(f"{path} holds a {type(rows).__name__}, expected a JSON list of rows")
        return rows
    raise ValueError(f"data file {path} has suffix {path.suffix!r}; expected .parquet, .jsonl or .json")


def check_files(
    paths: str | Path | Iterable[str | Path],
    tokenizer: Any,
    max_prompt_length: int,
    policy: str = "error",
    *,
    prompt_key: str = "prompt",
    chat_template_kwargs: Mapping[str, Any] | None = None,
) -> CheckedRows:
    """``check_rows`` over the rows of one or several data files (verl's ``data.train_files``), concatenated.

    Bad rows are named by file and row; ``kept_indices`` count over the concatenation. Under policy ``error`` all
    files are checked before the error is raised.
    """
    paths = [str(paths)] if isinstance(paths, str | Path) else [str(p) for p in paths]
    check_policy(policy)
    max_prompt_length = _check_length(max_prompt_length)
    rows: list[dict[str, Any]] = []
    kept: list[int] = []
    bad: list[BadRow] = []
    offset = 0
    for path in paths:
        file_rows = read_rows(path)
        file_kept, file_bad = _find_bad(file_rows, tokenizer, max_prompt_length, prompt_key, chat_template_kwargs, path)
        rows.extend(file_rows[i] for i in file_kept)
        kept.extend(offset + i for i in file_kept)
        bad.extend(file_bad)
        offset += len(file_rows)
    _apply_policy(bad, offset, ", ".join(paths), policy)
    return CheckedRows(rows=rows, kept_indices=kept, bad=bad)


def write_rows(rows: Sequence[Mapping[str, Any]], path: str | Path) -> Path:
    """Write rows to a ``.parquet`` (or ``.jsonl``) file, e.g. the filtered training set a run trains on."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.Table.from_pylist([dict(r) for r in rows]), path)
    elif path.suffix == ".jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    else:
        raise ValueError(f"cannot write rows to {path}: expected a .parquet or .jsonl path")
    return path
