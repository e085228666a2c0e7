"""Row files of both recipes' data: ``.parquet``, ``.jsonl`` (a row a line) or ``.json`` (a list of rows), read into
plain Python dicts and written atomically. A file that cannot be read raises ``BadDataError`` naming the file (and the
line of a ``.jsonl``); ``read_file_rows`` also hands back a ``.jsonl``'s unreadable lines one by one, for checks that
name each bad row (``rlpr.data.checks``)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from harness.files import write_atomically, write_text_atomically


class BadDataError(ValueError):
    """Rows that cannot be used: an unreadable data file, or (``rlpr.data.checks``) training rows that fail the checks
    under policy ``error``; the message names the file or each row."""


def read_file_rows(path: Path) -> tuple[list[Any], dict[int, str]]:
    """The rows of a data file and, for ``.jsonl``, the lines that could not be read (row index -> problem).

    A ``.jsonl`` row is a non-blank line; the problem names its line number. A whole-file problem raises
    ``BadDataError`` naming the file.
    """
    if not path.exists():
        raise FileNotFoundError(f"data file {path} does not exist")
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        try:
            return pq.read_table(path).to_pylist(), {}
        except Exception as err:  # pyarrow raises several types for a broken file
            raise BadDataError(f"{path} is not a readable parquet file: {type(err).__name__}: {err}") from err
    if path.suffix == ".jsonl":
        rows: list[Any] = []
        unreadable: dict[int, str] = {}
        for number, line in enumerate(path.read_bytes().split(b"\n"), start=1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line.decode("utf-8")))
            except UnicodeDecodeError as err:
                unreadable[len(rows)] = f"line {number} is not valid UTF-8 ({err.reason} at byte {err.start})"
                rows.append(None)
            except json.JSONDecodeError as err:
                unreadable[len(rows)] = f"line {number} is not valid JSON ({err.msg} at column {err.colno})"
                rows.append(None)
        return rows, unreadable
    if path.suffix == ".json":
        try:
            rows = json.loads(path.read_bytes().decode("utf-8"))
        except UnicodeDecodeError as err:
            raise BadDataError(f"{path} is not valid UTF-8 ({err.reason} at byte {err.start})") from err
        except json.JSONDecodeError as err:
            where = f"line {err.lineno} column {err.colno}"
            raise BadDataError(f"{path} is not valid JSON ({err.msg} at {where}; truncated or empty?)") from err
        if not isinstance(rows, list):
            raise BadDataError(f"{path} holds a {type(rows).__name__}, expected a JSON list of rows")
        return rows, {}
    raise ValueError(f"data file {path} has suffix {path.suffix!r}; expected .parquet, .jsonl or .json")


def read_rows(path: str | Path) -> list[dict[str, Any]]:
    """The rows of a ``.parquet``, ``.jsonl`` or ``.json`` (a list of rows) file as plain Python dicts.

    A file that cannot be read raises ``BadDataError`` naming the file (and the line of a ``.jsonl``).
    """
    path = Path(path).expanduser()
    rows, unreadable = read_file_rows(path)
    if unreadable:
        index = min(unreadable)
        raise BadDataError(f"{path} {unreadable[index]}")
    return rows


def write_rows(rows: Sequence[Mapping[str, Any]], path: str | Path) -> Path:
    """Write rows to a ``.parquet`` (or ``.jsonl``) file, e.g. the filtered training set a run trains on.

    Atomic: the rows go to a temporary file in the same folder, which then replaces ``path``.
    """
    path = Path(path)
    if path.suffix not in (".parquet", ".jsonl"):
        raise ValueError(f"cannot write rows to {path}: expected a .parquet or .jsonl path")
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        write_atomically(path, lambda tmp: pq.write_table(pa.Table.from_pylist([dict(r) for r in rows]), tmp))
    else:
        write_text_atomically(path, "".join(json.dumps(r) + "\n" for r in rows))
    return path
