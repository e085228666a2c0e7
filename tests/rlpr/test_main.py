"""The Hydra entry point: recipes compose, bad configs are refused, training data is checked; no training runs."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from hydra.errors import ConfigCompositionException

from harness import config_check
from harness.rows import BadDataError, read_rows
from rlpr.main import (
    BASE_CONFIG,
    CHECKED_DATA_FILE,
    CONFIG_DIR,
    check_config,
    check_training_data,
    compose_recipe,
    recipe_names,
    rlpr_task_runner_class,
)
from tests.helpers.params import fast_and_slow

REPO = Path(__file__).resolve().parents[2]


def test_recipes_are_found_in_the_checkout():
    assert CONFIG_DIR == REPO / "configs" / "rlpr"
    assert set(recipe_names()) >= {"qwen2.5-7b-base", "llama3.1-8b-instruct", "gemma2-2b-it", "smoke_cpu"}


def test_the_shared_base_is_not_a_recipe():
    files = {p.stem for p in (REPO / "configs" / "rlpr").glob("*.yaml")}
    assert BASE_CONFIG in files and set(recipe_names()) == files - {BASE_CONFIG}
    with pytest.raises(ValueError, match="unknown RLPR recipe '_base'"):
        compose_recipe(BASE_CONFIG)


@pytest.mark.parametrize("name", fast_and_slow(recipe_names(), ["qwen2.5-7b-base", "smoke_cpu"]))
def test_each_recipe_composes_with_overrides_and_passes_the_checks(name):
    config = compose_recipe(name, ["trainer.total_epochs=3", "rlpr.filter.beta=0.7"])
    assert config.trainer.total_epochs == 3
    assert config.rlpr.filter.beta == 0.7
    check_config(config)


def test_unknown_recipe_and_misspelled_override_are_refused():
    with pytest.raises(ValueError, match="unknown RLPR recipe 'qwen'; expected one of .*'qwen2.5-7b-base'"):
        compose_recipe("qwen")
    with pytest.raises(ConfigCompositionException, match="clip_ratio_hihg"):
        compose_recipe("smoke_cpu", ["actor_rollout_ref.actor.clip_ratio_hihg=0.3"])


REFUSED = [
    (["trainer.use_v1=true"], "trainer.use_v1=false"),
    (["reward_model.reward_manager=naive"], r"legacy reward keys \['reward_model.reward_manager'\]"),
    (["custom_reward_function.path=pkg://rlpr.evaluation.validation"], r"\['custom_reward_function.path'\]"),
    (["~rlpr"], "no rlpr: section"),
    (["actor_rollout_ref.actor.ppo_mini_batch_size=1000"], "ppo_mini_batch_size"),
    # a recipe copy with a typo, or a wrong value: named before Ray starts, with the nearest valid key
    (
        ["+trainer.totl_training_steps=3"],
        r"trainer\.totl_training_steps \(unknown key; did you mean trainer\.total_",
    ),
    (["+rlpr.filter.betta=0.6"], r"rlpr\.filter\.betta \(unknown key; did you mean rlpr\.filter\.beta\?"),
    (["actor_rollout_ref.actor.optim.lr=abc"], r"actor_rollout_ref\.actor\.optim\.lr='abc' \(expected a number"),
    (["rlpr.filter.beta=-1"], r"rlpr\.filter: beta must be a finite number >= 0, got -1"),
    (["rlpr.debias.mode=everything"], r"rlpr\.debias\.mode must be one of \('initial', 'current'\)"),
    (["rlpr.repetition.window=0"], r"rlpr\.repetition: window must be a positive int, got 0"),
    (["rlpr.repetition.split_rule=underscores"], r"rlpr\.repetition: unknown repetition split_rule 'underscores'"),
    (["rlpr.shaping=clamp"], r"^rlpr: .*clamp"),
]
# In the fast loop: one refusal of each kind (verl's trainer choice, a legacy key, an unknown key, a wrong type, a bad
# rlpr value); the others are slow (a second or two of composing and checking each).
FAST_REFUSALS = ["trainer.use_v1=true", "reward_model.reward_manager=naive", "+trainer.totl_training_steps=3",
                 "actor_rollout_ref.actor.optim.lr=abc", "rlpr.filter.beta=-1"]  # fmt: skip


@pytest.mark.parametrize(("overrides", "match"), fast_and_slow(REFUSED, FAST_REFUSALS, id_of=lambda case: case[0][0]))
def test_configs_the_trainer_cannot_honour_are_refused(overrides, match):
    config = compose_recipe("smoke_cpu", ["actor_rollout_ref.actor.use_dynamic_bsz=false", *overrides])
    with pytest.raises(ValueError, match=match):
        check_config(config)


def _write_rows(path: Path, truths: list) -> Path:
    rows = [
        {
            "data_source": "web",
            "prompt": [{"role": "user", "content": f"Question {i}?"}],
            "ability": "general",
            "reward_model": {"style": "rule", "ground_truth": truth},
            "extra_info": {"index": i},
        }
        for i, truth in enumerate(truths)
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_training_data_is_checked_before_training(tmp_path, small_tokenizer):
    clean = _write_rows(tmp_path / "clean.jsonl", ["a", "b"])
    dirty = _write_rows(tmp_path / "dirty.jsonl", ["a", None, "c"])
    out = tmp_path / "run"
    base = [f"trainer.default_local_dir={out}"]

    config = compose_recipe("smoke_cpu", [*base, f"data.train_files={clean}"])
    assert check_training_data(config, small_tokenizer) == [str(clean)]

    config = compose_recipe("smoke_cpu", [*base, f"data.train_files=[{clean},{dirty}]"])
    with pytest.raises(BadDataError, match=rf"{dirty} row 1: no_reference"):
        check_training_data(config, small_tokenizer)

    config = compose_recipe(
        "smoke_cpu", [*base, f"data.train_files=[{clean},{dirty}]", "rlpr.bad_prompt_policy=filter"]
    )
    files = check_training_data(config, small_tokenizer)
    assert files == [str(out / CHECKED_DATA_FILE)]
    assert [r["reward_model"]["ground_truth"] for r in read_rows(files[0])] == ["a", "b", "a", "c"]


def test_the_entry_bounds_references_by_the_scoring_budget(tmp_path, small_tokenizer):
    """A reference that cannot fit an o' row is a data error named by row, before any model runs."""
    long_reference = " ".join(["word"] * 300)  # > 256 tokens on any BPE
    data = _write_rows(tmp_path / "long.jsonl", ["a", long_reference])
    base = [f"trainer.default_local_dir={tmp_path / 'run'}", f"data.train_files={data}"]
    with pytest.raises(BadDataError, match=rf"{data} row 1: reference_too_long"):
        check_training_data(compose_recipe("smoke_cpu", [*base, "rlpr.max_scoring_length=256"]), small_tokenizer)
    assert check_training_data(compose_recipe("smoke_cpu", [*base, "rlpr.max_scoring_length=2048"]), small_tokenizer)


def test_task_runner_builds_on_verls_base_runner():
    from verl.trainer.main_ppo_v0 import BaseTaskRunner

    from rlpr.training.trainer import RLPRTrainer

    runner = rlpr_task_runner_class()
    assert issubclass(runner, BaseTaskRunner) and runner.__name__ == "RLPRTaskRunner"
    assert runner.run is not BaseTaskRunner.run and runner.trainer_cls is RLPRTrainer


def _run_main(argv: list[str], monkeypatch, capsys) -> str:
    from hydra.core.global_hydra import GlobalHydra

    from rlpr.main import main

    monkeypatch.setattr(sys, "argv", ["rlpr.main", *argv])
    try:
        main()
    except SystemExit as stop:
        assert stop.code in (None, 0), capsys.readouterr().err
    finally:
        GlobalHydra.instance().clear()
    return capsys.readouterr().out


def test_command_line_prints_the_composed_config_and_help(monkeypatch, capsys):
    job = _run_main(["--config-name", "gemma2-2b-it", "--cfg", "job", "trainer.total_epochs=3"], monkeypatch, capsys)
    assert "total_epochs: 3" in job and "format_mode: R1_nothink" in job and "experiment_name: gemma2-2b-it" in job
    help_text = _run_main(["--help"], monkeypatch, capsys)
    for name in recipe_names():
        assert f"\n  {name}" in help_text, name
    assert "--cfg job" in help_text and "python -m rlpr.smoke" in help_text
    assert len(help_text.splitlines()) < 40  # the recipes, not verl's whole config


def _main_exit(argv: list[str], monkeypatch) -> str:
    from hydra.core.global_hydra import GlobalHydra

    from rlpr.main import main

    monkeypatch.setattr(sys, "argv", ["rlpr.main", *argv])
    try:
        with pytest.raises(SystemExit) as stop:
            main()
    finally:
        GlobalHydra.instance().clear()
    return str(stop.value.code)


def test_a_mistyped_recipe_name_suggests_the_nearest(monkeypatch):
    message = _main_exit(["--config-name", "qwen2.5-7b"], monkeypatch)
    assert "unknown recipe 'qwen2.5-7b'; did you mean 'qwen2.5-7b-base'?" in message
    assert "gemma2-2b-it" in message


def test_a_typo_on_the_command_line_is_named_without_a_traceback(monkeypatch):
    message = _main_exit(["--config-name", "gemma2-2b-it", "+rlpr.filter.betta=0.6"], monkeypatch)
    assert message.startswith("python -m rlpr.main --config-name gemma2-2b-it: the RLPR config has 1 problem(s)")
    assert "rlpr.filter.betta (unknown key; did you mean rlpr.filter.beta?)" in message


def test_the_smoke_recipe_points_to_the_smoke_command(monkeypatch):
    message = _main_exit(["--config-name", "smoke_cpu"], monkeypatch)
    assert "python -m rlpr.smoke" in message


def test_bad_configs_stop_before_ray_and_paths_become_absolute(monkeypatch, tmp_path):
    import verl.trainer.main_ppo

    from rlpr.main import run_rlpr

    started = []
    monkeypatch.setattr(verl.trainer.main_ppo, "run_ppo", lambda config, task_runner_class: started.append(config))
    base = ["actor_rollout_ref.model.path=Qwen/Qwen2.5-7B"]
    with pytest.raises(ValueError, match="totl_training_steps"):
        run_rlpr(compose_recipe("qwen2.5-7b-base", [*base, "+trainer.totl_training_steps=3"]))
    assert started == []

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RLPR_TEST_DATA", str(tmp_path / "d"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    overrides = [*base, "data.train_files=$RLPR_TEST_DATA/train.parquet", "data.val_files=['~/v.parquet']"]
    run_rlpr(compose_recipe("qwen2.5-7b-base", [*overrides, "trainer.default_local_dir=runs/q"]))
    (config,) = started
    assert config.data.train_files == str(tmp_path / "d" / "train.parquet")
    assert list(config.data.val_files) == [str(tmp_path / "home" / "v.parquet")]
    assert config.trainer.default_local_dir == str(tmp_path / "runs" / "q")
    # driver-side files follow the absolute checkpoint folder
    assert config.rlpr.debias.cache_path == str(tmp_path / "runs" / "q" / "rlpr_debias_cache.json")
    assert config.actor_rollout_ref.model.path == "Qwen/Qwen2.5-7B"  # a hub id, not a local path


def test_the_repetition_word_rule_is_a_recipe_key():
    from rlpr.training.trainer import scoring_config_from

    assert scoring_config_from(compose_recipe("smoke_cpu")).repetition.split_rule == "official"
    config = compose_recipe("smoke_cpu", ["rlpr.repetition.split_rule=drop_empty"])
    assert scoring_config_from(config).repetition.split_rule == "drop_empty"


JUDGE_KWARGS = "reward.custom_reward_function.reward_kwargs"


@pytest.mark.parametrize(
    ("override", "instead"),
    [
        (f"+{JUDGE_KWARGS}.judge_api_key=sk-literal-789", "reward_kwargs.judge_api_key_env"),
        (f"+{JUDGE_KWARGS}.judge_endpoints.TheoremQA={{api_key:sk-literal-789}}", "[TheoremQA].api_key_env"),
    ],
)
def test_a_literal_validation_judge_key_is_refused_before_ray_starts(monkeypatch, override, instead):
    import verl.trainer.main_ppo

    with pytest.raises(config_check.ConfigError, match="a literal API key in the config is refused") as refused:
        check_config(compose_recipe("qwen2.5-7b-base", [override]))
    assert instead in str(refused.value) and "sk-literal-789" not in str(refused.value)
    started = []
    monkeypatch.setattr(verl.trainer.main_ppo, "run_ppo", lambda config, task_runner_class: started.append(config))
    message = _main_exit(["--config-name", "qwen2.5-7b-base", override], monkeypatch)
    assert message.startswith("python -m rlpr.main --config-name qwen2.5-7b-base: reward.custom_reward_function")
    assert instead in message and "sk-literal-789" not in message and started == []


def test_the_validation_judge_key_variable_must_be_set(monkeypatch):
    monkeypatch.delenv("RLPR_MAIN_KEY_FOR_TEST", raising=False)
    overrides = [f"{JUDGE_KWARGS}.judge_api_key_env=RLPR_MAIN_KEY_FOR_TEST"]
    expected = f"{JUDGE_KWARGS}.judge_api_key_env=RLPR_MAIN_KEY_FOR_TEST: that environment variable is not set"
    with pytest.raises(config_check.ConfigError, match=expected):
        check_config(compose_recipe("qwen2.5-7b-base", overrides))
    monkeypatch.setenv("RLPR_MAIN_KEY_FOR_TEST", "k")
    check_config(compose_recipe("qwen2.5-7b-base", overrides))


def test_the_validation_judge_keys_reach_the_ray_workers_and_are_never_printed(monkeypatch, capsys):
    import ray
    import verl.trainer.main_ppo
    from verl.trainer.constants_ppo import get_ppo_ray_runtime_env

    from rlpr.main import run_rlpr

    initialised, started = [], []
    monkeypatch.setattr(ray, "is_initialized", lambda: bool(initialised))
    monkeypatch.setattr(ray, "init", lambda **kwargs: initialised.append(kwargs))
    monkeypatch.setattr(verl.trainer.main_ppo, "run_ppo", lambda config, task_runner_class: started.append(config))
    monkeypatch.setenv("RLPR_MAIN_KEY_FOR_TEST", "sk-default-secret")
    monkeypatch.setenv("RLPR_STRONG_KEY_FOR_TEST", "sk-strong-secret")
    overrides = [
        "actor_rollout_ref.model.path=Qwen/Qwen2.5-7B",
        f"{JUDGE_KWARGS}.judge_base_url=http://judge:8000/v1",
        f"{JUDGE_KWARGS}.judge_model=judge",
        f"{JUDGE_KWARGS}.judge_api_key_env=RLPR_MAIN_KEY_FOR_TEST",
        f"+{JUDGE_KWARGS}.judge_endpoints.TheoremQA={{model:strong,api_key_env:RLPR_STRONG_KEY_FOR_TEST}}",
    ]
    run_rlpr(compose_recipe("qwen2.5-7b-base", overrides))
    ((kwargs,),), (config,) = [initialised], started
    env_vars = kwargs["runtime_env"]["env_vars"]  # every Ray worker's environment, the reward workers' included
    assert env_vars["RLPR_MAIN_KEY_FOR_TEST"] == "sk-default-secret"
    assert env_vars["RLPR_STRONG_KEY_FOR_TEST"] == "sk-strong-secret"
    verls = get_ppo_ray_runtime_env(config)["env_vars"]
    assert verls and verls.items() <= env_vars.items()  # verl's own variables kept
    printed = capsys.readouterr().out
    assert "ray init kwargs" in printed and "'RLPR_MAIN_KEY_FOR_TEST': '***'" in printed
    assert "'RLPR_STRONG_KEY_FOR_TEST': '***'" in printed
    shown = printed + str(config)  # what is printed, and the config verl prints, logs and saves
    assert "sk-default-secret" not in shown and "sk-strong-secret" not in shown
