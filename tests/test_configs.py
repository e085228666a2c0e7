"""Every Hydra recipe under configs/ against verl 0.9.1's own config, with the checker the entry points run.

``harness.config_check.config_problems`` is the one checker (``rlpr.main``, ``rm_r1.main`` run it before Ray
starts): unknown keys with the nearest valid one, value types, legacy reward keys, verl's ``validate_config`` (PPO-based
recipes) and every ``_target_`` section built with ``omega_conf_to_dataclass``. Here it runs on every
``configs/**/*.yaml`` (a shared base that sibling recipes list in their defaults is composed with their search path),
and on planted mistakes. Then the RLPR recipes are checked against the paper's settings
(docs/rlpr.md#training-settings).
"""

from __future__ import annotations

import dataclasses
import inspect
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, OmegaConf, open_dict
from verl.trainer.ppo.utils import need_reference_policy

from harness import config_check
from rlpr.data.prep import TRAIN, default_file_name
from rlpr.evaluation.benchmarks import BENCHMARKS
from rlpr.main import rlpr_section_schema
from rlpr.training.filter import DEFAULT_EMA_START_STEP, DEFAULT_MOMENTUM, DEFAULT_START_STEP, EmaStdFilter
from rlpr.training.scoring import ScoringConfig
from tests.helpers.params import fast_and_slow

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "configs"

ALL_YAMLS = sorted(CONFIGS.rglob("*.yaml"))
RLPR_RECIPES = ["qwen2.5-7b-base", "llama3.1-8b-instruct", "gemma2-2b-it"]


# ---------------------------------------------------------------------------------------------------------------------
# Composing a recipe file as its entry point does


def searchpath_overrides(path: Path) -> list[str]:
    """Hydra overrides that give a shared base recipe the search path of the recipes built on it.

    Hydra reads ``hydra.searchpath`` from the primary config only (a config in a defaults list that sets it is an
    error), so a base listed in sibling recipes' defaults (configs/rm_r1/grpo.yaml) has none; it is composed with the
    search path of a sibling that lists it. A recipe with its own search path needs nothing.
    """
    if OmegaConf.select(OmegaConf.load(path), "hydra.searchpath") is not None:
        return []
    for sibling in sorted(path.parent.glob("*.yaml")):
        raw = OmegaConf.load(sibling)
        searchpath = OmegaConf.select(raw, "hydra.searchpath")
        if sibling != path and path.stem in config_check.defaults_names(raw) and searchpath is not None:
            return ["hydra.searchpath=[" + ",".join(f"'{entry}'" for entry in searchpath) + "]"]
    raise AssertionError(
        f"{path}: no hydra.searchpath, and no sibling recipe that lists it in its defaults has one to compose it with"
    )


def compose_file(path: Path) -> tuple[DictConfig, dict]:
    """(the recipe composed, Hydra's defaults-list choices for it)."""
    with initialize_config_dir(config_dir=str(path.parent), version_base=None):
        composed = compose(config_name=path.stem, overrides=searchpath_overrides(path), return_hydra_config=True)
    choices = dict(composed.hydra.runtime.choices)
    with open_dict(composed):
        del composed["hydra"]
    return composed, choices


def own_sections(path: Path) -> dict:
    """The recipe's own sections: ``rlpr:`` of configs/rlpr against the default recipe's keys, others free-form."""
    return {"rlpr": rlpr_section_schema() if path.parent == CONFIGS / "rlpr" else None, "rm_r1": None}


def check_recipe(path: Path, composed: tuple[DictConfig, dict] | None = None) -> DictConfig:
    """The library checker on one recipe file; raises ``ConfigError`` listing its problems."""
    config, choices = composed or compose_file(path)
    config_check.check(config, config_check.verl_base(path), choices, own_sections(path), source=str(path))
    return config


# ---------------------------------------------------------------------------------------------------------------------
# Every YAML


@pytest.fixture(scope="module")
def composed():
    """compose_file of each recipe, composed once per test module."""
    cache: dict[Path, tuple[DictConfig, dict]] = {}

    def get(path: Path) -> tuple[DictConfig, dict]:
        if path not in cache:
            cache[path] = compose_file(path)
        return cache[path]

    return get


# In the fast loop: one recipe of each kind (the others: slow).
FAST_YAMLS = ["rlpr/qwen2.5-7b-base.yaml", "rm_r1/grpo_instruct_7b.yaml", "rm_r1/sft_instruct_7b.yaml",
              "judge_reward/served_judge_7b.yaml"]  # fmt: skip


@pytest.mark.parametrize("path", fast_and_slow(ALL_YAMLS, FAST_YAMLS, id_of=lambda p: str(p.relative_to(CONFIGS))))
def test_recipe_matches_verls_config(path, composed):
    check_recipe(path, composed(path))


def test_every_recipe_folder_is_covered():
    assert {p.parent.name for p in ALL_YAMLS} >= {"rlpr"}
    assert {f"{name}.yaml" for name in RLPR_RECIPES + ["smoke_cpu"]} <= {p.name for p in ALL_YAMLS}


# ---------------------------------------------------------------------------------------------------------------------
# The checker catches mistakes


PLANTED = """\
hydra:
  searchpath:
    - pkg://verl.trainer.config
defaults:
  - ppo_trainer
  - _self_
algorithm:
  adv_estimator: grpo
actor_rollout_ref:
  rollout:
{rollout}
    engine_kwargs:
      vllm:
        any_free_form_key: 1
  actor:
    use_dynamic_bsz: true
{actor}
trainer:
  use_v1: false
ray_kwargs:
  ray_init:
    runtime_env:
      env_vars:
        ANY_VARIABLE: "1"
rlpr:
  anything: goes
"""


def _plant(tmp_path: Path, actor_lines: str, rollout_lines: str = "    name: vllm") -> Path:
    folder = tmp_path / "planted"
    folder.mkdir(exist_ok=True)
    path = folder / "recipe.yaml"
    path.write_text(PLANTED.format(actor=actor_lines, rollout=rollout_lines))
    return path


def test_correct_recipe_with_free_form_fields_passes(tmp_path):
    recipe = check_recipe(_plant(tmp_path, "    clip_ratio_high: 0.27"))
    assert recipe.actor_rollout_ref.actor.clip_ratio_high == 0.27


def test_planted_typo_fails(tmp_path):
    with pytest.raises(config_check.ConfigError, match=r"actor_rollout_ref\.actor\.clip_ratio_hihg .*clip_ratio_high"):
        check_recipe(_plant(tmp_path, "    clip_ratio_hihg: 0.27"))


def test_planted_misplaced_section_fails(tmp_path):
    with pytest.raises(config_check.ConfigError, match=r"actor_rollout_ref\.actor\.optim\.lr \(a section here"):
        check_recipe(_plant(tmp_path, "    optim:\n      lr:\n        value: 1e-6"))


def test_planted_invalid_value_fails_validate_config(tmp_path):
    with pytest.raises(config_check.ConfigError, match="Invalid loss_agg_mode: token_mean"):
        check_recipe(_plant(tmp_path, "    loss_agg_mode: token_mean"))


def test_planted_unbuildable_section_fails(tmp_path):
    # validate_config never builds the rollout section; building it rejects disaggregation with an hf rollout.
    rollout = "    name: hf\n    disaggregation:\n      enabled: true"
    match = r"section actor_rollout_ref\.rollout \(.*RolloutConfig\) does not build"
    with pytest.raises(config_check.ConfigError, match=match):
        check_recipe(_plant(tmp_path, "    clip_ratio_high: 0.27", rollout))


def test_legacy_reward_keys_fail(tmp_path):
    path = _plant(tmp_path, "    clip_ratio_high: 0.27")
    path.write_text(path.read_text() + "custom_reward_function:\n  path: pkg://rlpr.evaluation.validation\n")
    with pytest.raises(config_check.ConfigError, match=r"legacy reward keys \['custom_reward_function.path'\]"):
        check_recipe(path)


def test_planted_value_of_the_wrong_type_is_named(tmp_path):
    with pytest.raises(
        config_check.ConfigError, match=r"actor_rollout_ref\.actor\.optim\.lr='abc' \(expected a number"
    ):
        check_recipe(_plant(tmp_path, "    optim:\n      lr: abc"))


def test_planted_typo_in_the_rlpr_section_is_named(tmp_path):
    # a user's copy of an RLPR recipe (its rlpr: section is checked against the recipes' keys)
    text = (CONFIGS / "rlpr" / "gemma2-2b-it.yaml").read_text().replace("    beta: 1.0\n", "    betta: 1.0\n", 1)
    assert "betta" in text
    path = tmp_path / "mine.yaml"
    path.write_text(text)
    (tmp_path / "_base.yaml").write_text((CONFIGS / "rlpr" / "_base.yaml").read_text())
    config, choices = compose_file(path)
    with pytest.raises(
        config_check.ConfigError, match=r"rlpr\.filter\.betta \(unknown key; did you mean rlpr\.filter\.beta\?"
    ):
        config_check.check(config, "ppo_trainer", choices, {"rlpr": rlpr_section_schema()})


@pytest.mark.parametrize("path", sorted((CONFIGS / "rm_r1").glob("grpo*.yaml")), ids=lambda p: p.stem)
def test_rm_r1_grpo_runs_on_the_classic_trainer(path, composed):
    # verl's main_ppo picks the TransferQueue trainer unless trainer.use_v1 is false (verl/trainer/main_ppo.py: main);
    # the CPU smoke test drives the classic one, so every setting pins it through the shared base.
    assert OmegaConf.select(OmegaConf.load(CONFIGS / "rm_r1" / "grpo.yaml"), "trainer.use_v1") is False
    assert composed(path)[0].trainer.use_v1 is False


# ---------------------------------------------------------------------------------------------------------------------
# The RLPR recipes carry the paper's settings (docs/rlpr.md#training-settings)

PAPER = {
    # recipe: (prompts per step, mini-batch, temperature, validation top_p, max prompt, beta, format mode)
    "qwen2.5-7b-base": (768, 192, 1.0, 1.0, 2048, 0.5, "R1"),
    "llama3.1-8b-instruct": (256, 64, 0.6, 0.95, 2048, 0.9, "R1_nothink"),
    "gemma2-2b-it": (256, 64, 0.6, 0.95, 1024, 1.0, "R1_nothink"),
}


@pytest.fixture(scope="module")
def rlpr_recipes(composed):
    return {name: composed(CONFIGS / "rlpr" / f"{name}.yaml")[0] for name in RLPR_RECIPES + ["smoke_cpu"]}


@pytest.mark.parametrize("name", RLPR_RECIPES)
def test_rlpr_recipe_has_the_papers_settings(name, rlpr_recipes):
    cfg = rlpr_recipes[name]
    batch, mini_batch, temperature, val_top_p, max_prompt, beta, mode = PAPER[name]
    actor, rollout = cfg.actor_rollout_ref.actor, cfg.actor_rollout_ref.rollout
    assert (cfg.data.train_batch_size, actor.ppo_mini_batch_size, rollout.n) == (batch, mini_batch, 8)
    assert (rollout.temperature, rollout.val_kwargs.temperature, rollout.val_kwargs.top_p) == (
        temperature,
        temperature,
        val_top_p,
    )
    assert rollout.val_kwargs.do_sample is True and rollout.val_kwargs.n == 1  # Avg@k: k copies in the val file
    assert (cfg.data.max_prompt_length, cfg.data.max_response_length) == (max_prompt, 3072)
    assert (actor.clip_ratio_low, actor.clip_ratio_high, actor.loss_agg_mode) == (0.2, 0.27, "token-mean")
    assert (actor.optim.lr, actor.optim.lr_scheduler_type, actor.optim.lr_warmup_steps_ratio) == (1e-6, "constant", 0)
    assert actor.optim.clip_grad == 1.0 and actor.grad_clip == 1.0
    assert actor.entropy_coeff == 0.001  # a bonus: verl subtracts entropy_coeff * entropy from the loss
    assert actor.use_kl_loss is False and cfg.algorithm.use_kl_in_reward is False
    assert not need_reference_policy(cfg)
    assert (cfg.algorithm.adv_estimator, cfg.algorithm.norm_adv_by_std_in_grpo) == ("grpo", True)
    assert cfg.trainer.use_v1 is False
    assert (cfg.rlpr.format_mode, cfg.rlpr.filter.beta) == (mode, beta)
    assert cfg.rlpr.scoring_temperature == temperature
    assert cfg.reward.custom_reward_function.reward_kwargs.format_mode == mode
    assert (cfg.rlpr.filter.ema_start_step, cfg.rlpr.filter.start_step, cfg.rlpr.filter.momentum) == (
        DEFAULT_EMA_START_STEP,
        DEFAULT_START_STEP,
        DEFAULT_MOMENTUM,
    )
    assert (cfg.rlpr.score_method, cfg.rlpr.shaping, cfg.rlpr.format_coef) == ("mean_prob", "clip", 0.1)
    assert (cfg.rlpr.debias.mode, cfg.rlpr.debias.tagged) == ("initial", False)
    # The data files are those rlpr.data.prep writes, in a folder per answer format.
    # the folders the README's preparation commands write (scripts/prepare_rlpr_data.py --output data/rlpr/<format>)
    folder = {"R1": "data/rlpr/r1", "R1_nothink": "data/rlpr/r1_nothink"}[mode]
    assert cfg.data.train_files == f"{folder}/{default_file_name(TRAIN)}"
    assert list(cfg.data.val_files) == [f"{folder}/{default_file_name(b)}" for b in BENCHMARKS]


def _key_tree(node) -> object:
    if isinstance(node, DictConfig):
        return {k: _key_tree(node._get_node(k)) for k in node}
    return None


def test_rlpr_sections_have_the_same_keys_everywhere(rlpr_recipes):
    """A typo in one recipe's rlpr: section (which verl never reads) shows up as a difference from the others."""
    trees = {name: _key_tree(cfg.rlpr) for name, cfg in rlpr_recipes.items()}
    reference = trees["qwen2.5-7b-base"]
    for name, tree in trees.items():
        assert tree == reference, f"rlpr section of {name} differs from qwen2.5-7b-base"


def test_every_rlpr_key_is_commented():
    """Each key of each rlpr: section has a comment line right above it (the recipe documents itself)."""
    for path in sorted((CONFIGS / "rlpr").glob("*.yaml")):
        lines = path.read_text().splitlines()
        if "rlpr:" not in lines:  # a recipe that changes nothing of the base's rlpr: section
            continue
        start = lines.index("rlpr:")
        for number in range(start + 1, len(lines)):
            line = lines[number]
            if line.strip() and not line.lstrip().startswith("#"):
                assert lines[number - 1].lstrip().startswith("#"), f"{path.name} line {number + 1}: {line.strip()}"


def test_the_base_rlpr_section_holds_the_code_defaults():
    """The rlpr: values of _base.yaml are the defaults the reward and the filter take in code: one set of values."""
    rl = OmegaConf.load(CONFIGS / "rlpr" / "_base.yaml").rlpr
    code = ScoringConfig()
    assert (rl.format_mode, rl.score_method, rl.shaping, rl.format_coef) == (
        code.format_mode,
        code.score_method,
        code.shaping,
        code.format_coef,
    )
    assert dict(rl.repetition) == dataclasses.asdict(code.repetition)  # every key, by the field's name
    assert (rl.debias.mode, rl.debias.tagged) == (code.debias.mode, code.debias.tagged)
    assert rl.max_scoring_length == code.max_scoring_length
    signature = inspect.signature(EmaStdFilter).parameters
    for key in ("ema_start_step", "start_step", "momentum"):
        assert rl.filter[key] == signature[key].default, key
    assert dict(rl.filter.beta_per_source) == {} and signature["beta_per_source"].default is None


def test_smoke_config_is_small_and_filters_early(rlpr_recipes):
    cfg = rlpr_recipes["smoke_cpu"]
    assert cfg.data.train_batch_size * cfg.actor_rollout_ref.rollout.n <= 16
    assert cfg.data.max_prompt_length <= 256 and cfg.data.max_response_length <= 96
    assert (cfg.rlpr.filter.ema_start_step, cfg.rlpr.filter.start_step) == (1, 2)
    steps = cfg.trainer.total_training_steps
    assert steps >= 4 and 0 < cfg.trainer.save_freq <= steps
    assert cfg.trainer.device == "cpu" and list(cfg.trainer.logger) == ["console"]
    assert cfg.trainer.use_v1 is False
