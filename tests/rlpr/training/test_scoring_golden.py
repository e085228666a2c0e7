"""The scoring batch builder's outputs, field by field, equal the frozen digests of the builder before its rewrite;
the no-padding input the trainer sends equals verl's conversion of those outputs."""

import importlib.util
import json
from pathlib import Path

import pytest

_spec = importlib.util.spec_from_file_location("rlpr_scoring_golden", Path(__file__).with_name("scoring_golden.py"))
golden = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(golden)
_spec = importlib.util.spec_from_file_location("rlpr_test_helpers", Path(__file__).with_name("helpers.py"))
helpers = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(helpers)


def test_outputs_equal_the_frozen_ones(qwen_tokenizer):
    expected = json.loads(golden.GOLDEN.read_text())
    got = golden.all_digests(qwen_tokenizer)
    assert set(got) == set(expected)
    for case, fields in got.items():
        assert {k: v for k, v in fields.items() if v != expected[case].get(k)} == {}, case


@pytest.mark.parametrize("multiple", [1, 5, 64])
def test_the_trainers_log_prob_input_equals_verls_conversion_of_the_padded_batch(qwen_tokenizer, multiple):
    from rlpr.training.scoring import ScoringConfig, build_scoring_batch

    scoring = build_scoring_batch(golden.golden_rollout(qwen_tokenizer), qwen_tokenizer, ScoringConfig())
    meta = {"temperature": 0.6}
    got = scoring.log_prob_input(multiple, meta)
    assert "data" not in vars(scoring)  # the padded layout was not built for it
    helpers.assert_same_tensordict(got, helpers.verl_conversion(scoring.data, multiple, meta))
