"""The scoring batch builder's outputs, field by field, equal the frozen digests of the builder before its rewrite."""

import importlib.util
import json
from pathlib import Path

_spec = importlib.util.spec_from_file_location("rlpr_scoring_golden", Path(__file__).with_name("scoring_golden.py"))
golden = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(golden)


def test_outputs_equal_the_frozen_ones(qwen_tokenizer):
    expected = json.loads(golden.GOLDEN.read_text())
    got = golden.all_digests(qwen_tokenizer)
    assert set(got) == set(expected)
    for case, fields in got.items():
        assert {k: v for k, v in fields.items() if v != expected[case].get(k)} == {}, case
