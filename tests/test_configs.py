"""Every Hydra recipe under configs/ against verl 0.9.1's own config (docs/architecture.md#configs).

A YAML typo composes silently and most sections are only read inside GPU workers, so for every ``configs/**/*.yaml``
(a shared base that sibling recipes list in their defaults is composed with their search path):
1. every key path the YAML writes exists in verl's composed default config (the same base and the same defaults-list
   choices as the recipe), except the recipe's own top-level section (``rlpr:``, ``rm_r1:``), free-form dict fields
   (an empty dict or ``null`` in verl's default, e.g. ``engine_kwargs.vllm``, ``override_config``, and
   ``FREE_FORM_KEYS``);
2. no legacy reward key (verl ignores them unless migrated): recipes use ``reward.*`` only;
3. verl's ``validate_config`` passes (PPO-based recipes);
4. every ``_target_`` section is built from the recipe with ``omega_conf_to_dataclass``, except sections holding a
   model config (they need the model's files) and sections that fail the same way on verl's own default.
Then the RLPR recipes are checked against the paper's settings (docs/rlpr.md#training-settings).
"""

from __future__ import annotations

import difflib
import shutil
import warnings
from pathlib import Path

import pytest
import verl.trainer.config as verl_config_pkg
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, OmegaConf
from verl.trainer.ppo.utils import need_critic, need_reference_policy
from verl.utils.config import omega_conf_to_dataclass, validate_config

from rlpr.data_prep import TRAIN, default_file_name
from rlpr.filter import DEFAULT_EMA_START_STEP, DEFAULT_MOMENTUM, DEFAULT_START_STEP
from rlpr.main import legacy_reward_sections
from rlpr.validation import BENCHMARKS

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "configs"
VERL_CONFIG_DIR = Path(verl_config_pkg.__file__).parent
RECIPE_SECTIONS = {"rlpr", "rm_r1"}
# Free-form although verl's default lists a few keys, or absent from verl's YAML and read with .get(...):
# ray_init is passed as ray.init(**ray_init) (verl/trainer/main_ppo.py: run_ppo); reward_kwargs is read by
# verl/trainer/ppo/reward.py: get_custom_reward_fn.
FREE_FORM_KEYS = {"ray_kwargs.ray_init", "reward.custom_reward_function.reward_kwargs"}
# Needs the model's files (and the network for a hub id); never built here.
NEEDS_MODEL_FILES = {"verl.workers.config.HFModelConfig"}
LEGACY_REWARD_KEYS = set(legacy_reward_sections())
PPO_BASES = {p.stem for p in VERL_CONFIG_DIR.glob("ppo_*trainer.yaml")}
SFT_BASES = {p.stem for p in VERL_CONFIG_DIR.glob("sft_trainer*.yaml")}

ALL_YAMLS = sorted(CONFIGS.rglob("*.yaml"))
RLPR_RECIPES = ["qwen2.5-7b-base", "llama3.1-8b-instruct", "gemma2-2b-it"]


# ---------------------------------------------------------------------------------------------------------------------
# The checker


def _defaults_names(raw: DictConfig) -> list[str]:
    names = []
    for entry in raw.get("defaults", []) or []:
        if isinstance(entry, str):
            names.append(entry)
        elif isinstance(entry, DictConfig) and len(entry) == 1:
            names.append(str(next(iter(entry.values()))))
    return names


def recipe_base(path: Path) -> str:
    """The verl config a recipe builds on, from its defaults list (following sibling recipes it lists)."""
    raw = OmegaConf.load(path)
    for name in _defaults_names(raw):
        if name in PPO_BASES or name in SFT_BASES:
            return name
        sibling = path.parent / f"{name}.yaml"
        if sibling.exists() and sibling != path:
            return recipe_base(sibling)
    raise AssertionError(
        f"{path}: its defaults list {_defaults_names(raw)} names none of verl's trainer configs "
        f"{sorted(PPO_BASES | SFT_BASES)} (nor a sibling recipe that does)"
    )


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
        if sibling != path and path.stem in _defaults_names(raw) and searchpath is not None:
            return ["hydra.searchpath=[" + ",".join(f"'{entry}'" for entry in searchpath) + "]"]
    raise AssertionError(
        f"{path}: no hydra.searchpath, and no sibling recipe that lists it in its defaults has one to compose it with"
    )


def compose_pair(path: Path, work_dir: Path) -> tuple[DictConfig, DictConfig]:
    """(the recipe composed, verl's default composed from the recipe's own hydra + defaults sections alone)."""
    copy = work_dir / path.parent.name
    shutil.copytree(path.parent, copy, dirs_exist_ok=True)
    raw = OmegaConf.load(path)
    skeleton = OmegaConf.create({k: raw[k] for k in ("hydra", "defaults") if k in raw})
    OmegaConf.save(skeleton, copy / f"_defaults_of_{path.stem}.yaml")
    overrides = searchpath_overrides(path)
    with initialize_config_dir(config_dir=str(copy), version_base=None):
        recipe = compose(config_name=path.stem, overrides=overrides)
        reference = compose(config_name=f"_defaults_of_{path.stem}", overrides=overrides)
    return recipe, reference


def unknown_keys(written: DictConfig, reference: DictConfig, prefix: str = "") -> list[str]:
    """Key paths of ``written`` (a raw recipe YAML) that verl's composed ``reference`` does not have."""
    problems = []
    for key in written:
        path = f"{prefix}{key}"
        if not prefix and key in {"defaults", "hydra"} | RECIPE_SECTIONS:
            continue
        if path in FREE_FORM_KEYS:
            continue
        if key not in reference.keys():  # `in` alone treats a mandatory (???) value as absent
            close = difflib.get_close_matches(str(key), [str(k) for k in reference], n=1)
            problems.append(f"{path} (not in verl's config{f'; did you mean {prefix}{close[0]}?' if close else ''})")
            continue
        value = written._get_node(key)
        default = reference._get_node(key)
        if isinstance(value, DictConfig):
            if isinstance(default, DictConfig):
                if len(default) > 0:  # an empty dict in verl's default is a free-form field
                    problems += unknown_keys(value, default, f"{path}.")
            elif default._is_none() is False:  # null in verl's default: an optional free-form value
                problems.append(f"{path} (a section here, but a value in verl's config: {default._value()!r})")
    return problems


def _target_nodes(node: DictConfig, prefix: str = ""):
    if "_target_" in node:
        yield prefix.rstrip("."), node
    for key in node:
        child = node._get_node(key)
        if isinstance(child, DictConfig) and not child._is_none():
            yield from _target_nodes(child, f"{prefix}{key}.")


def _needs_model_files(node: DictConfig) -> bool:
    return any(n._target_ in NEEDS_MODEL_FILES for _, n in _target_nodes(node))


def _build_error(node: DictConfig | None) -> str | None:
    if node is None:
        return "absent"
    try:
        omega_conf_to_dataclass(node)
    except Exception as err:
        return f"{type(err).__name__}: {err}"
    return None


def section_problems(recipe: DictConfig, reference: DictConfig | None, prefix: str = "") -> list[str]:
    """Build the outermost ``_target_`` sections of ``recipe`` (building one builds its sub-sections).

    A section that does not build is a problem unless verl's own default fails the same way (e.g. a mandatory ``???``
    the recipe does not use, or a section verl never builds as written); then its sub-sections are tried instead.
    Sections holding a model config are skipped: they need the model's files.
    """
    if "_target_" in recipe and not _needs_model_files(recipe):
        error = _build_error(recipe)
        if error is None:
            return []
        if error != _build_error(reference):
            return [f"section {prefix.rstrip('.')} ({recipe._target_}) does not build: {error}"]
    problems = []
    for key in recipe:
        child = recipe._get_node(key)
        if isinstance(child, DictConfig) and not child._is_none():
            ref_child = reference._get_node(key) if reference is not None and key in reference.keys() else None
            problems += section_problems(
                child, ref_child if isinstance(ref_child, DictConfig) else None, f"{prefix}{key}."
            )
    return problems


def check_recipe(path: Path, work_dir: Path, composed: tuple[DictConfig, DictConfig] | None = None) -> DictConfig:
    """Run checks 1-4 of the module docstring on one recipe file; return the composed config.

    ``composed``: the recipe and reference from ``compose_pair`` when they are already at hand.
    """
    base = recipe_base(path)
    recipe, reference = composed or compose_pair(path, work_dir)
    problems = unknown_keys(OmegaConf.load(path), reference)
    assert not problems, f"{path}: keys that verl's {base} config does not have:\n  " + "\n  ".join(problems)
    legacy = sorted(LEGACY_REWARD_KEYS & set(OmegaConf.load(path)))
    assert not legacy, f"{path}: legacy reward keys {legacy} are ignored by verl 0.9.1; use reward.* instead"

    if base in PPO_BASES:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # need_critic warns that GRPO runs without a critic
            validate_config(recipe, use_reference_policy=need_reference_policy(recipe), use_critic=need_critic(recipe))

    problems = section_problems(recipe, reference)
    assert not problems, f"{path}:\n  " + "\n  ".join(problems)
    return recipe


# ---------------------------------------------------------------------------------------------------------------------
# Every YAML


@pytest.fixture(scope="module")
def composed(tmp_path_factory):
    """compose_pair of each recipe, composed once per test module."""
    work = tmp_path_factory.mktemp("recipes")
    cache: dict[Path, tuple[DictConfig, DictConfig]] = {}

    def get(path: Path) -> tuple[DictConfig, DictConfig]:
        if path not in cache:
            cache[path] = compose_pair(path, work)
        return cache[path]

    return get


@pytest.mark.parametrize("path", ALL_YAMLS, ids=[str(p.relative_to(CONFIGS)) for p in ALL_YAMLS])
def test_recipe_matches_verls_config(path, composed, tmp_path):
    check_recipe(path, tmp_path, composed(path))


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
    recipe = check_recipe(_plant(tmp_path, "    clip_ratio_high: 0.27"), tmp_path / "work")
    assert recipe.actor_rollout_ref.actor.clip_ratio_high == 0.27


def test_planted_typo_fails(tmp_path):
    with pytest.raises(AssertionError, match=r"actor_rollout_ref\.actor\.clip_ratio_hihg .*clip_ratio_high"):
        check_recipe(_plant(tmp_path, "    clip_ratio_hihg: 0.27"), tmp_path / "work")


def test_planted_misplaced_section_fails(tmp_path):
    with pytest.raises(AssertionError, match=r"actor_rollout_ref\.actor\.optim\.lr \(a section here"):
        check_recipe(_plant(tmp_path, "    optim:\n      lr:\n        value: 1e-6"), tmp_path / "work")


def test_planted_invalid_value_fails_validate_config(tmp_path):
    with pytest.raises(Exception, match="Invalid loss_agg_mode: token_mean"):
        check_recipe(_plant(tmp_path, "    loss_agg_mode: token_mean"), tmp_path / "work")


def test_planted_unbuildable_section_fails(tmp_path):
    # validate_config never builds the rollout section; building it rejects disaggregation with an hf rollout.
    rollout = "    name: hf\n    disaggregation:\n      enabled: true"
    with pytest.raises(AssertionError, match=r"section actor_rollout_ref\.rollout \(.*RolloutConfig\) does not build"):
        check_recipe(_plant(tmp_path, "    clip_ratio_high: 0.27", rollout), tmp_path / "work")


def test_legacy_reward_keys_fail(tmp_path):
    path = _plant(tmp_path, "    clip_ratio_high: 0.27")
    path.write_text(path.read_text() + "custom_reward_function:\n  path: pkg://rlpr.validation\n")
    with pytest.raises(AssertionError, match=r"legacy reward keys \['custom_reward_function'\]"):
        check_recipe(path, tmp_path / "work")


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
    # The data files are those rlpr.data_prep writes, in a folder per answer format.
    folder = {"R1": "~/data/rlpr/r1", "R1_nothink": "~/data/rlpr/r1_nothink"}[mode]
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
        start = lines.index("rlpr:")
        for number in range(start + 1, len(lines)):
            line = lines[number]
            if line.strip() and not line.lstrip().startswith("#"):
                assert lines[number - 1].lstrip().startswith("#"), f"{path.name} line {number + 1}: {line.strip()}"


def test_smoke_config_is_small_and_filters_early(rlpr_recipes):
    cfg = rlpr_recipes["smoke_cpu"]
    assert cfg.data.train_batch_size * cfg.actor_rollout_ref.rollout.n <= 16
    assert cfg.data.max_prompt_length <= 256 and cfg.data.max_response_length <= 96
    assert (cfg.rlpr.filter.ema_start_step, cfg.rlpr.filter.start_step) == (1, 2)
    steps = cfg.trainer.total_training_steps
    assert steps >= 4 and 0 < cfg.trainer.save_freq <= steps
    assert cfg.trainer.device == "cpu" and list(cfg.trainer.logger) == ["console"]
    assert cfg.trainer.use_v1 is False
