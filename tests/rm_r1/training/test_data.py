"""rm_r1.training.data's facts that live elsewhere: the length limits (read from the recipes) and the label map."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from harness import config_paths
from rm_r1.judge.verdicts import LABEL_OF_SIDE, label_side
from rm_r1.training.data import PROMPT_BUDGET, SFT_MAX_LENGTH, recipe_length

CONFIGS = Path(__file__).resolve().parents[3] / "configs" / "rm_r1"


def test_preparation_drops_what_every_recipe_would_refuse():
    """Each setting's config inherits the limit from its base (``grpo.yaml``/``sft.yaml``, which preparation reads)
    or sets the same value: preparation and every trainer agree."""
    for base, key, value in (("grpo", "max_prompt_length", PROMPT_BUDGET), ("sft", "max_length", SFT_MAX_LENGTH)):
        settings = sorted(CONFIGS.glob(f"{base}_*.yaml"))
        assert len(settings) == (6 if base == "grpo" else 3)
        for path in settings:
            config = yaml.safe_load(path.read_text())
            assert base in config["defaults"], path
            assert (config.get("data") or {}).get(key, value) == value, path


def test_recipe_length_reads_the_recipe_and_names_a_bad_value(tmp_path, monkeypatch):
    folder = tmp_path / "harness" / "_configs" / "rm_r1"
    folder.mkdir(parents=True)
    (folder / "grpo.yaml").write_text("defaults:\n  - ppo_trainer\ndata:\n  max_prompt_length: 1234\n")
    (folder / "sft.yaml").write_text("data:\n  max_length: ${oc.env:LENGTH}\n")
    monkeypatch.setattr(config_paths, "_PACKAGE_DIR", tmp_path / "harness")
    assert recipe_length("grpo.yaml", "max_prompt_length") == 1234
    with pytest.raises(ValueError, match=r"sft\.yaml: data\.max_length must be an integer number of tokens"):
        recipe_length("sft.yaml", "max_length")


def test_every_written_label_reads_back_as_its_side():
    assert LABEL_OF_SIDE == {"A": "model_a", "B": "model_b"}
    assert {side: label_side(label) for side, label in LABEL_OF_SIDE.items()} == {"A": "A", "B": "B"}
    assert label_side("A") == "A" and label_side("B") == "B"
    with pytest.raises(ValueError, match="unknown preference label 'model_c'"):
        label_side("model_c")
