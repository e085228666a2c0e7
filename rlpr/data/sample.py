"""The bundled sample (``rlpr/data/sample.jsonl``) and the scoring jsonl format it is written in.

Each line holds ``question`` (or ``prompt``: chat messages), ``reference`` and ``responses`` (strings), and optionally
``id`` and ``data_source``. ``python -m rlpr.score`` reads such files; the smoke runs train and warm-start on the
sample.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

SAMPLE = "sample.jsonl"


def sample_path() -> Path:
    """The bundled sample: ~20 general-domain prompts with reference answers and a few responses each."""
    return Path(str(resources.files("rlpr") / "data" / SAMPLE))


def load_rows(path: str | Path) -> list[dict]:
    """Rows of a scoring jsonl, checked; a bad row is an error naming its line."""
    rows = []
    with open(path, encoding="utf-8") as f:
        for line_no, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}:{line_no}: not valid JSON ({e})") from e
            if not isinstance(row.get("question"), str) and not isinstance(row.get("prompt"), list):
                raise ValueError(f"{path}:{line_no}: needs 'question' (str) or 'prompt' (chat messages)")
            if not isinstance(row.get("reference"), str):
                raise ValueError(f"{path}:{line_no}: 'reference' must be a str, got {row.get('reference')!r}")
            responses = row.get("responses")
            if not isinstance(responses, list) or not responses or not all(isinstance(r, str) for r in responses):
                raise ValueError(f"{path}:{line_no}: 'responses' must be a non-empty list of str")
            row.setdefault("id", f"line-{line_no}")
            rows.append(row)
    if not rows:
        raise ValueError(f"{path}: no rows")
    return rows
