"""harness.rows: the reader and the atomic writer of row files (.parquet, .jsonl, .json)."""

import json

import pytest

from harness.rows import BadDataError, read_rows, write_rows

ROW = {
    "data_source": "web",
    "prompt": [{"role": "user", "content": "What is 2 + 2?"}],
    "reward_model": {"ground_truth": "4"},
}


def row() -> dict:
    return json.loads(json.dumps(ROW))


def test_unreadable_files_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.parquet"):
        read_rows(tmp_path / "missing.parquet")
    bad_json = tmp_path / "bad.jsonl"
    bad_json.write_text(json.dumps(row()) + "\n{oops\n")
    with pytest.raises(ValueError, match="bad.jsonl line 2 is not valid JSON"):
        read_rows(bad_json)
    (tmp_path / "rows.csv").write_text("a,b\n")
    with pytest.raises(ValueError, match="suffix '.csv'"):
        read_rows(tmp_path / "rows.csv")
    with pytest.raises(BadDataError, match="bad.jsonl line 2"):
        read_rows(bad_json)


def test_write_rows_is_atomic(tmp_path, monkeypatch):
    import pyarrow.parquet as pq

    target = write_rows([row()], tmp_path / "rows.parquet")

    def fail(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(pq, "write_table", fail)
    with pytest.raises(OSError, match="disk full"):
        write_rows([row(), row()], target)
    assert read_rows(target) == [row()] and [p.name for p in tmp_path.iterdir()] == ["rows.parquet"]
