"""The judgements file: a line that is not a judgement record is an error naming it."""

from __future__ import annotations

import json

import pytest

from rm_r1.evaluation.store import read_judgements


def test_read_judgements_names_a_bad_line(tmp_path):
    path = tmp_path / "j.jsonl"
    path.write_text(json.dumps({"pair_id": "a", "sample": 0}) + "\n{oops\n" + json.dumps({"pair_id": "b"}) + "\n")
    with pytest.raises(ValueError, match=r"j\.jsonl:2: not a judgement record"):
        read_judgements(path)
