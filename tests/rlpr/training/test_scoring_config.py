"""``scoring_config_from``: the ``rlpr:`` keys of the composed recipes map onto ``ScoringConfig`` by name."""

import pytest

from rlpr.main import compose_recipe
from rlpr.training.scoring import DebiasConfig, RepetitionConfig, ScoringConfig
from rlpr.training.trainer import scoring_config_from


def expected(format_mode: str, max_scoring_length: int, run: str) -> ScoringConfig:
    """The paper's reward settings (docs/rlpr.md) as every recipe sets them, written out field by field."""
    return ScoringConfig(
        format_mode=format_mode,
        score_method="mean_prob",
        shaping="clip",
        format_coef=0.1,
        repetition=RepetitionConfig(window=10, limit=10, apply_to_all=True, split_rule="official"),
        max_scoring_length=max_scoring_length,
        debias=DebiasConfig(mode="initial", tagged=False, cache_path=f"{run}/rlpr_debias_cache.json"),
    )


@pytest.mark.parametrize(
    "recipe, want",
    [
        # max_scoring_length: data.max_response_length (3072, or 96 in the smoke) + 64 for the answer tail
        ("qwen2.5-7b-base", expected("R1", 3136, "checkpoints/rlpr/qwen2.5-7b-base")),
        ("llama3.1-8b-instruct", expected("R1_nothink", 3136, "checkpoints/rlpr/llama3.1-8b-instruct")),
        ("gemma2-2b-it", expected("R1_nothink", 3136, "checkpoints/rlpr/gemma2-2b-it")),
        ("smoke_cpu", expected("R1", 160, "outputs/rlpr_smoke_cpu/checkpoints")),
    ],
)
def test_recipes_give_the_paper_settings(recipe, want):
    assert scoring_config_from(compose_recipe(recipe)) == want


def test_overrides_reach_the_fields_of_the_same_names():
    config = compose_recipe(
        "smoke_cpu",
        [
            "rlpr.repetition.window=7",
            "rlpr.repetition.limit=3",
            "rlpr.repetition.apply_to_all=false",
            "rlpr.repetition.split_rule=drop_empty",
            "rlpr.debias.mode=current",
            "rlpr.debias.tagged=true",
            "rlpr.max_scoring_length=50",
            "rlpr.score_method=geo_mean_prob",
        ],
    )
    got = scoring_config_from(config)
    assert got.repetition == RepetitionConfig(window=7, limit=3, apply_to_all=False, split_rule="drop_empty")
    assert (got.debias.mode, got.debias.tagged) == ("current", True)
    assert (got.max_scoring_length, got.score_method) == (50, "geo_mean_prob")


@pytest.mark.parametrize("section", ["repetition", "debias"])
def test_an_unknown_key_is_named(section):
    config = compose_recipe("smoke_cpu", [f"+rlpr.{section}.windw=3"])
    with pytest.raises(ValueError, match=rf"rlpr\.{section}: unknown key\(s\) \['windw'\]; expected keys among \["):
        scoring_config_from(config)
