"""Files that survive a kill, for every command of both recipes: a file is written whole to a temporary file next to
it, synced and renamed over it (a kill leaves the old file or the new one, never a part of one), and an append-only
JSON-lines file gets its torn last line cut before the next append."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from pathlib import Path

logger = logging.getLogger(__name__)


def write_atomically(path: str | os.PathLike, write: Callable[[Path], object]) -> None:
    """``write(tmp)`` to a temporary file in ``path``'s folder, sync it, then rename it over ``path``. The temporary
    file is removed when ``write`` fails."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        with tmp.open("rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_text_atomically(path: str | os.PathLike, text: str) -> None:
    """``text`` (UTF-8) to ``path``, atomically (``write_atomically``)."""
    write_atomically(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def repair_jsonl_tail(path: Path, redone: str) -> None:
    """Make appends to the JSON-lines file ``path`` start on a fresh line: end a complete last record with its
    newline, cut a torn one (logged, with ``redone`` saying what happens to it). A missing file is left alone."""
    data = path.read_bytes() if path.exists() else b""
    if not data or data.endswith(b"\n"):
        return
    head, newline, last = data.rpartition(b"\n")
    try:
        json.loads(last)
    except ValueError:
        logger.warning("%s: dropping a torn last line (%d bytes); %s", path, len(last), redone)
        os.truncate(path, len(head + newline))  # one call: a kill here cannot lose the complete lines
        return
    with path.open("ab") as f:
        f.write(b"\n")
