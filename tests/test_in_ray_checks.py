"""The config checks every entry point runs, before Ray on the composed config and again inside Ray (the task runner's
``prepare``: verl's ``OmegaConf.resolve``, worker and pool registration, then the check) on the resolved config.

Before the checker dereferenced verl's interpolated defaults, the in-Ray check refused every shipped RLPR recipe
(``actor_rollout_ref.rollout.mtp`` / ``qat``: "a section here, but a single value in verl's config"), so every
cluster run stopped there while the pre-Ray check passed.
"""

from __future__ import annotations

import pytest
from hydra import compose, initialize_config_dir

from harness import config_check
from tests.helpers.params import fast_and_slow


def _entry_points() -> dict[str, tuple]:
    from rlpr import main as rlpr_main
    from rm_r1.as_reward import main as judge_main
    from rm_r1.training import main as rm_r1_main

    return {
        # name: (config folder, shipped PPO settings, pre-Ray check, in-Ray task runner class for a setting)
        "rlpr.main": (
            rlpr_main.CONFIG_DIR,
            rlpr_main.recipe_names(),
            lambda config, name: rlpr_main.check_config(config),
            lambda name: rlpr_main.rlpr_task_runner_class(),
        ),
        "rm_r1.main": (
            rm_r1_main.CONFIG_DIR,
            [n for n in [*rm_r1_main.setting_names(), rm_r1_main.SMOKE_SETTING] if not rm_r1_main.is_sft(n)],
            lambda config, name: rm_r1_main.check_config(config, name=name),
            rm_r1_main.grpo_task_runner_class,
        ),
        "rm_r1.judge_main": (
            judge_main.CONFIG_DIR,
            [*judge_main.setting_names(), "smoke_cpu"],
            lambda config, name: judge_main.check_config(config, name=name),
            judge_main.judge_task_runner_class,
        ),
    }


def _cases() -> list[tuple[str, str]]:
    return [(entry, name) for entry, (_, names, _, _) in _entry_points().items() for name in names]


def _compose(config_dir, name: str, overrides=()):
    with initialize_config_dir(config_dir=str(config_dir), version_base=None):
        return compose(config_name=name, overrides=list(overrides))


# A value the external judge setting leaves mandatory (``???``), given as a user would.
NEEDED = ["reward.custom_reward_function.reward_kwargs.base_url=http://judge:8000/v1"]


def _needed(config_dir, name: str) -> list[str]:
    raw = (config_dir / f"{name}.yaml").read_text()
    return NEEDED if "base_url: ???" in raw else []


def test_every_entry_point_ships_settings():
    cases = _cases()
    assert {entry for entry, _ in cases} == {"rlpr.main", "rm_r1.main", "rm_r1.judge_main"}
    assert len(cases) >= 12, cases


# In the fast loop: one setting per entry point, and both ways of reaching the judge (the other settings: slow).
FAST_CASES = ["rlpr.main-qwen2.5-7b-base", "rm_r1.main-grpo_instruct_7b", "rm_r1.judge_main-external_judge",
              "rm_r1.judge_main-served_judge_7b"]  # fmt: skip


@pytest.mark.parametrize(("entry", "name"), fast_and_slow(_cases(), FAST_CASES, id_of="-".join))
def test_a_shipped_setting_passes_before_ray_and_inside_ray(entry, name):
    config_dir, _, check_before, runner_class = _entry_points()[entry]
    config = _compose(config_dir, name, _needed(config_dir, name))
    check_before(config, name)
    config_check.resolve_paths(config)
    runner = runner_class(name)()
    runner.prepare(config)  # what the Ray task runner runs before reading any file: resolve, register, check
    assert not any(node._is_interpolation() for node in _leaves(config)), "prepare resolves the config in place"
    assert runner.role_worker_mapping, "verl's actor/rollout worker was registered before the check"


def _leaves(node):
    from omegaconf import DictConfig, ListConfig

    for key in node.keys() if isinstance(node, DictConfig) else range(len(node)):
        child = node._get_node(key)
        if isinstance(child, DictConfig | ListConfig) and not child._is_none() and not child._is_interpolation():
            yield from _leaves(child)
        else:
            yield child


def test_the_checker_answers_the_same_on_the_resolved_config():
    """A section set where verl's default is an interpolation to a section: its keys are checked, resolved or not."""
    from omegaconf import OmegaConf

    from rlpr.main import compose_recipe

    for resolve in (False, True):
        config = compose_recipe("qwen2.5-7b-base", ["+actor_rollout_ref.rollout.mtp.enabel=true"])
        if resolve:
            OmegaConf.resolve(config)
        problems = config_check.config_problems(config, "ppo_trainer", own_sections={"rlpr": None})
        assert problems == [
            "actor_rollout_ref.rollout.mtp.enabel (unknown key; did you mean actor_rollout_ref.rollout.mtp.enable?)"
        ], (resolve, problems)


@pytest.mark.parametrize("where", ["before Ray", "inside Ray"])
def test_a_critic_estimator_is_refused_by_rlpr_first(where):
    """verl's own checks would try to build the critic and load its default model; RLPR's refusal names the key."""
    from rlpr.main import check_config, compose_recipe, rlpr_task_runner_class

    config = compose_recipe("qwen2.5-7b-base", ["algorithm.adv_estimator=gae"])
    with pytest.raises(config_check.ConfigError, match=r"algorithm\.adv_estimator=gae / critic\.enable: RLPR trains"):
        if where == "before Ray":
            check_config(config)
        else:
            rlpr_task_runner_class()().prepare(config)
