"""What an evaluation run keeps in its ``--output-dir``, and how it is written so that a kill loses nothing.

``judgements.jsonl`` is appended one flushed line per judgement; on resume a torn last line is cut and the complete
ones are skipped. ``settings.json`` pins what the stored judgements depend on. Summaries are replaced atomically.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, TextIO

from harness.files import write_text_atomically

RESULTS_FILE, SUMMARY_FILE, TABLE_FILE, PLOT_FILE, SETTINGS_FILE = (
    "judgements.jsonl",
    "summary.json",
    "summary.md",
    "scaling.png",
    "settings.json",
)
META_FILE, META_SETTINGS_FILE = "meta_judgements.jsonl", "meta_settings.json"
"""Meta-RM guided voting (``--meta-rm``): one meta score per stored judgement, and the meta scorer's settings."""


def read_judgements(path: Path) -> dict[tuple[str, int], dict[str, Any]]:
    """Stored judgements by (pair_id, sample); an unreadable line is an error naming it."""
    done: dict[tuple[str, int], dict[str, Any]] = {}
    if not path.exists():
        return done
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        try:
            record = json.loads(line)
            done[(record["pair_id"], record["sample"])] = record
        except (ValueError, KeyError, TypeError) as error:
            raise ValueError(f"{path}:{number}: not a judgement record ({error})") from error
    return done


def append_judgement(out: TextIO, record: dict[str, Any]) -> None:
    """Append one judgement record as a json line and flush it, so that it survives a kill of the run."""
    out.write(json.dumps(record, ensure_ascii=False) + "\n")
    out.flush()


def check_settings(output_dir: Path, settings: dict[str, Any], name: str = SETTINGS_FILE) -> None:
    """Record ``settings`` in ``name`` of a new output folder; in one that has them, stop the run (``SystemExit``
    naming every changed setting) unless they are the same."""
    path = output_dir / name
    if path.exists():
        stored = json.loads(path.read_text(encoding="utf-8"))
        changed = sorted(key for key in set(stored) | set(settings) if stored.get(key) != settings.get(key))
        if changed:
            details = ", ".join(f"{k}: {stored.get(k)!r} -> {settings.get(k)!r}" for k in changed)
            raise SystemExit(
                f"{output_dir} holds judgements made with other settings ({details}); use another --output-dir"
            )
    else:
        write_text_atomically(path, json.dumps(settings, indent=2) + "\n")
