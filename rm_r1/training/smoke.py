"""``python -m rm_r1.smoke``: RM-R1's GRPO stage with the preference reward on CPU in a few minutes.

Runs verl's classic trainer (``RayPPOTrainer.fit()``) on verl's own Ray + vLLM + FSDP2 path on this CPU
(``--backend real``, the default: ``cpu_backend.real_stack``, the task runner ``python -m rm_r1.main`` uses) or on the
in-process backend (``--backend inprocess``: HF ``generate()`` instead of vLLM, no Ray) with
``configs/rm_r1/smoke_cpu.yaml`` (the shared GRPO recipe, shrunk): the bundled sample pairs
(``rm_r1/training/smoke_pairs.jsonl``, Skywork's format) become judge prompts of the instruct family through the
same code as ``scripts/prepare_rm_r1_data.py`` (with a one-line judge instruction, to keep the CPU forwards short), and
a tiny Qwen2 judge over the real Qwen2.5 tokenizer is first warm-started to write both verdicts, so that the sampled
verdicts of a group differ and GRPO has something to compare (built once, cached in the output folder).
Prints a short per-step table (reward, training and validation preference accuracy, response length, step time) and a
closing summary, appends verl's full metrics to ``<output-dir>/metrics.jsonl`` and draws ``<output-dir>/metrics.png``;
saves checkpoints, and running it again resumes from the latest one (pass ``trainer.total_training_steps=N`` to go
further). Extra arguments are Hydra overrides of the smoke recipe.
"""

from __future__ import annotations

import sys
from importlib import resources
from pathlib import Path
from typing import Any

from harness.reporting import Column, validation_accuracy

SMOKE_RECIPE = "smoke_cpu"
DEFAULT_OUTPUT_DIR = "outputs/rm_r1_smoke_cpu"
PROG = "python -m rm_r1.smoke"
# Supervised steps of the warm start: enough to write a verdict tag, few enough that both verdicts stay likely.
WARM_STEPS = 30
FAMILY = "instruct"
# A one-line judge instruction (an instruct-family system prompt file, see rm_r1.judge.prompts.load_prompt): the paper's
# prompts are tested elsewhere; this keeps the CPU forward passes short.
JUDGE_INSTRUCTION = "Compare the two replies and say which is better. End with {verdict_a} or {verdict_b}.\n"
VAL_PAIRS = 4


def sample_pairs_path() -> Path:
    """The bundled sample: 16 short preference pairs in Skywork-Reward-Preference's format."""
    return Path(str(resources.files("rm_r1.training") / "smoke_pairs.jsonl"))


def prepare_data(out_dir: Path, tokenizer: Any, budget: int) -> tuple[Path, Path]:
    """``train.parquet`` and ``val.parquet`` (``VAL_PAIRS`` held-out pairs) of judge prompts, written once."""
    import datasets

    from harness.files import write_atomically, write_text_atomically
    from rm_r1.training.data import Report, convert, held_out, load_table, rl_rows, token_counts, within_budget

    data = out_dir / "data"
    paths = data / "train.parquet", data / "val.parquet"
    if all(p.exists() for p in paths):
        return paths
    data.mkdir(parents=True, exist_ok=True)
    prompt_file = data / "judge_instruction.txt"
    write_text_atomically(prompt_file, JUDGE_INSTRUCTION)
    report = Report()
    pairs = convert(enumerate(load_table(str(sample_pairs_path()))), "skywork", report)
    val = held_out(len(pairs), VAL_PAIRS, seed=0)
    for split, path in zip(("train", "val"), paths):
        members = [p for i, p in enumerate(pairs) if (i in val) == (split == "val")]
        rows = rl_rows(members, split, FAMILY, str(prompt_file), seed=0, both_orders=False)
        counts = token_counts(tokenizer, [r["prompt"] for r in rows], add_generation_prompt=True)
        rows = within_budget(rows, counts, budget, report, split)
        if len(rows) != len(members):
            raise ValueError(
                f"{split}: {len(members) - len(rows)} sample prompts exceed data.max_prompt_length={budget}"
            )
        write_atomically(path, lambda p, rows=rows: datasets.Dataset.from_list(rows).to_parquet(str(p)))
    return paths


def prepare_model(out_dir: Path, tokenizer: Any, train_file: Path, warm_steps: int = WARM_STEPS, seed: int = 0) -> Path:
    """The tiny random judge (built once) warm-started on every training prompt with each verdict (cached)."""
    import pandas as pd

    from cpu_backend.warm_start import warm_start
    from harness.reporting import WARM_START_PROGRESS, step_progress
    from offline_models.tiny_model import MODEL_FILES, VLLM_TINY_MODEL, build_folder_atomically, save_tiny_qwen2
    from rm_r1.judge.verdicts import VERDICT_TAGS

    base = out_dir / "models" / "tiny-random"
    build_folder_atomically(
        base, lambda folder: save_tiny_qwen2(tokenizer, folder, seed, **VLLM_TINY_MODEL), MODEL_FILES
    )
    prompts = pd.read_parquet(train_file)["prompt"]
    examples = [(list(p), VERDICT_TAGS[side]) for p in prompts for side in ("A", "B")]
    with step_progress(WARM_START_PROGRESS, warm_steps):
        return Path(warm_start(base, out_dir / "models" / "tiny-warm", tokenizer, examples, warm_steps, 1e-2, seed))


def _prepared_overrides(out_dir: Path, overrides: list[str], warm_steps: int, budget: int) -> list[str]:
    """The sample data and the warm-started judge (both cached in ``out_dir``), as overrides of the smoke recipe."""
    from offline_models import SMALL_VOCAB, load_qwen25_tokenizer

    tokenizer = load_qwen25_tokenizer(SMALL_VOCAB)
    train, val = prepare_data(out_dir, tokenizer, budget)
    model = prepare_model(out_dir, tokenizer, train, warm_steps)
    return [
        f"actor_rollout_ref.model.path={model}",
        f"data.train_files={train}",
        f"data.val_files={val}",
        f"trainer.default_local_dir={out_dir / 'checkpoints'}",
        "trainer.resume_mode=auto",
        *overrides,
    ]


def build_trainer(out_dir: Path, overrides: list[str] = (), warm_steps: int = WARM_STEPS) -> Any:
    """The smoke ``RayPPOTrainer`` on the CPU backend, ready for ``fit()``; ``out_dir`` holds the sample data, the
    models and (unless an override moves them) the checkpoints."""
    from verl.trainer.ppo.ray_trainer import RayPPOTrainer

    from cpu_backend import build_cpu_trainer, compose_cpu_config
    from harness.config_paths import recipe_config_dir
    from offline_models import SMALL_VOCAB, load_qwen25_tokenizer

    config_dir = str(recipe_config_dir("rm_r1"))
    # The prompt budget may be overridden: read it from the composed config before preparing the data.
    budget = int(
        compose_cpu_config(SMOKE_RECIPE, overrides=list(overrides), config_dir=config_dir).data.max_prompt_length
    )
    config = compose_cpu_config(
        SMOKE_RECIPE, overrides=_prepared_overrides(out_dir, overrides, warm_steps, budget), config_dir=config_dir
    )
    return build_cpu_trainer(RayPPOTrainer, config, load_qwen25_tokenizer(SMALL_VOCAB))


def build_real(
    out_dir: Path, overrides: list[str] = (), warm_steps: int = WARM_STEPS, n_gpus: int = 1
) -> tuple[Any, type]:
    """The smoke setting on verl's own Ray + vLLM path (``cpu_backend.real_stack``): the checked config, paths made
    absolute, and the task runner class ``rm_r1.main`` trains GRPO with."""
    from cpu_backend.real_stack import compose_real_config
    from harness import config_check
    from harness.config_paths import recipe_config_dir
    from rm_r1.training.main import check_config, grpo_task_runner_class

    config_dir = recipe_config_dir("rm_r1")
    budget = int(compose_real_config(config_dir, SMOKE_RECIPE, overrides, n_gpus).data.max_prompt_length)
    config = compose_real_config(
        config_dir, SMOKE_RECIPE, _prepared_overrides(out_dir, overrides, warm_steps, budget), n_gpus
    )
    check_config(config, name=SMOKE_RECIPE)
    config_check.resolve_paths(config)
    return config, grpo_task_runner_class(SMOKE_RECIPE)


def preference_accuracy(metrics: dict[str, Any]) -> float | None:
    """Training preference accuracy of a step: the preference reward is +1 for a right verdict and -1 otherwise
    (``rm_r1.training.reward.preference_reward``), so the accuracy is (mean reward + 1) / 2."""
    score = metrics.get("critic/score/mean")
    return None if score is None else (float(score) + 1) / 2


TABLE = (
    Column("reward", "critic/score/mean"),
    Column("train_acc", preference_accuracy, ".2f"),
    Column("val_acc", validation_accuracy, ".2f"),
    Column("resp_len", "response_length/mean", ".1f"),
    Column("kl", "actor/kl_loss", ".4f"),
    Column("step_s", "timing_s/step", ".1f"),
)
CURVES = {
    "preference reward": (TABLE[0],),
    "preference accuracy": TABLE[1:3],
}


def main(argv: list[str] | None = None) -> int:
    from cpu_backend.smoke import smoke_command

    return smoke_command(
        argv,
        prog=PROG,
        description=__doc__.split("\n\n")[0],
        recipe="configs/rm_r1/smoke_cpu.yaml",
        default_output_dir=DEFAULT_OUTPUT_DIR,
        warm_steps=WARM_STEPS,
        build_trainer=build_trainer,
        build_real=build_real,
        columns=TABLE,
        panels=CURVES,
    )


if __name__ == "__main__":
    sys.exit(main())
