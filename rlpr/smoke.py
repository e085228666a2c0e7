"""``python -m rlpr.smoke``: the RLPR loop on CPU in a few minutes (the README's main job).

Runs ``RLPRTrainer`` on verl's own Ray + vLLM + FSDP2 path on this CPU (``--backend real``, the default:
``cpu_backend.real_stack``, the task runner ``python -m rlpr.main`` uses) or on the in-process backend
(``--backend inprocess``: HF ``generate()`` instead of vLLM, verl's own FSDP engine worker as the actor, no Ray) with
``configs/rlpr/smoke_cpu.yaml``: a tiny Qwen2 model over the real Qwen2.5 tokenizer (rebuilt offline, first 8,192
ranks) and the bundled sample (``rlpr/data/sample.jsonl``). A random tiny model never writes
``<think>…</think><answer>…</answer>``, so it is first warm-started with a few seconds of supervised fitting on the
sample's well-formed responses (built once, cached in the output folder) so that rewards vary within a group.
Prints a short per-step table (reward, r, r', r̂, valid fraction, filter threshold and kept fraction, generation
rounds, step time) and a closing summary, appends verl's full metrics to ``<output-dir>/metrics.jsonl`` and draws
``<output-dir>/metrics.png``; saves checkpoints, and running it again resumes from the latest one (pass
``trainer.total_training_steps=N`` to go further). Extra arguments are Hydra overrides of the smoke recipe.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from omegaconf import DictConfig

    from rlpr.training.trainer import RLPRTrainer

from harness.files import write_atomically
from harness.reporting import Column, validation_accuracy

SMOKE_RECIPE = "smoke_cpu"
DEFAULT_OUTPUT_DIR = "outputs/rlpr_smoke_cpu"
PROG = "python -m rlpr.smoke"
# Supervised steps of the warm start: enough to write the tags most of the time, few enough that sampled groups
# still mix well-formed, malformed, right and wrong answers (so R varies within a group).
WARM_STEPS = 60


def sample_training_rows(fmt: str = "R1") -> list[dict]:
    """The bundled sample as verl training rows (``data_source``, ``prompt``, ``ability``, ``reward_model``, ...)."""
    from rlpr.data.prompts import build_r1_messages
    from rlpr.data.sample import load_rows, sample_path

    return [
        {
            "data_source": row["data_source"],
            "prompt": build_r1_messages(row["question"], fmt),
            "ability": "general",
            "reward_model": {"style": "model", "ground_truth": row["reference"]},
            "extra_info": {"index": i, "split": "train", "id": row["id"]},
        }
        for i, row in enumerate(load_rows(sample_path()))
    ]


def warm_start_examples(fmt: str = "R1") -> list[tuple[list[dict], str]]:
    """(messages, response) pairs: each sample prompt with its well-formed correct AND well-formed wrong response
    (the first two of the row), so the warm model samples either and the RLPR reward varies within a group."""
    from rlpr.data.prompts import build_r1_messages
    from rlpr.data.sample import load_rows, sample_path

    return [
        (build_r1_messages(r["question"], fmt), resp) for r in load_rows(sample_path()) for resp in r["responses"][:2]
    ]


def prepare(
    out_dir: Path, warm_steps: int = WARM_STEPS, seed: int = 0, for_vllm: bool = False
) -> tuple[Path, Path, object]:
    """The sample as parquet, and the warm-started tiny model (model + tokenizer folder); both cached.

    ``for_vllm``: the model sized for vLLM's CPU attention (``VLLM_TINY_MODEL``, the real path), in its own folders;
    the in-process backend keeps the smaller default model."""
    import pandas as pd

    from cpu_backend.warm_start import warm_start
    from offline_models import SMALL_VOCAB, load_qwen25_tokenizer
    from offline_models.tiny_model import MODEL_FILES, VLLM_TINY_MODEL, build_folder_atomically, save_tiny_qwen2

    tokenizer = load_qwen25_tokenizer(SMALL_VOCAB)
    data = out_dir / "data" / "sample_train.parquet"
    if not data.exists():  # written whole, then renamed: a kill leaves no partial file behind
        data.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(data, lambda tmp: pd.DataFrame(sample_training_rows()).to_parquet(tmp))
    suffix, size = ("-vllm", VLLM_TINY_MODEL) if for_vllm else ("", {})
    base = out_dir / "models" / f"tiny-random{suffix}"
    build_folder_atomically(base, lambda folder: save_tiny_qwen2(tokenizer, folder, seed, **size), MODEL_FILES)
    warm_dir = warm_model_dir(out_dir).with_name(f"tiny-warm{suffix}")
    warm = warm_start(base, warm_dir, tokenizer, warm_start_examples(), warm_steps, 1e-2, seed)
    return data, Path(warm), tokenizer


def warm_model_dir(out_dir: Path) -> Path:
    """Where ``prepare`` keeps the warm-started tiny model (with its tokenizer) under a smoke output folder."""
    return Path(out_dir) / "models" / "tiny-warm"


def build_trainer(out_dir: Path, overrides: list[str] = (), warm_steps: int = WARM_STEPS) -> RLPRTrainer:
    """The smoke ``RLPRTrainer`` on the CPU backend, ready for ``fit()``.

    ``out_dir`` holds the sample data, the models and (unless an override moves them) the checkpoints.
    """
    from omegaconf import open_dict

    from cpu_backend import build_cpu_trainer, compose_cpu_config
    from harness.config_paths import recipe_config_dir
    from harness.reporting import WARM_START_PROGRESS, step_progress
    from rlpr.main import check_training_data
    from rlpr.training.trainer import RLPRTrainer

    with step_progress(WARM_START_PROGRESS, warm_steps):
        data, model, tokenizer = prepare(out_dir, warm_steps)
    config = compose_cpu_config(
        SMOKE_RECIPE,
        overrides=[
            f"actor_rollout_ref.model.path={model}",
            f"data.train_files={data}",
            f"data.val_files={data}",
            f"trainer.default_local_dir={out_dir / 'checkpoints'}",
            "trainer.resume_mode=auto",
            *overrides,
        ],
        config_dir=str(recipe_config_dir("rlpr")),
    )
    with open_dict(config):
        config.data.train_files = check_training_data(config, tokenizer)
    return build_cpu_trainer(RLPRTrainer, config, tokenizer)


# On the real path every step must train so that each one witnesses the weight sync: a step short of its 4 prompts
# still trains on mini-batches of 2 (8 responses), with up to 4 generation rounds to fill it; micro-batches of 4 so
# that such a mini-batch splits over 2 actor ranks (--gpus 2).
REAL_SMOKE_OVERRIDES = (
    "actor_rollout_ref.actor.ppo_mini_batch_size=2",
    "actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu=4",
    "actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu=4",
    "rlpr.max_gen_rounds=4",
)


def build_real(
    out_dir: Path, overrides: list[str] = (), warm_steps: int = WARM_STEPS, n_gpus: int = 1
) -> tuple[DictConfig, type]:
    """The smoke recipe on verl's own Ray + vLLM path (``cpu_backend.real_stack``): the checked config, paths made
    absolute, and the task runner class ``rlpr.main`` trains with (the training rows are checked inside it)."""
    from cpu_backend.real_stack import compose_real_config
    from harness import config_check
    from harness.config_paths import recipe_config_dir
    from harness.reporting import WARM_START_PROGRESS, step_progress
    from rlpr.main import check_config, rlpr_task_runner_class

    with step_progress(WARM_START_PROGRESS, warm_steps):
        data, model, _ = prepare(out_dir, warm_steps, for_vllm=True)
    config = compose_real_config(
        recipe_config_dir("rlpr"),
        SMOKE_RECIPE,
        [
            f"actor_rollout_ref.model.path={model}",
            f"data.train_files={data}",
            f"data.val_files={data}",
            f"trainer.default_local_dir={out_dir / 'checkpoints'}",
            "trainer.resume_mode=auto",
            *REAL_SMOKE_OVERRIDES,
            *overrides,
        ],
        n_gpus,
    )
    check_config(config)
    config_check.resolve_paths(config)
    return config, rlpr_task_runner_class()


# The per-step table and the curves (harness.reporting): the metrics that matter for RLPR, by the trainer's names.
TABLE = (
    Column("R", "rlpr/reward_mean"),
    Column("r", "rlpr/r_mean"),
    Column("r'", "rlpr/r_prime_mean"),
    Column("r_hat", "rlpr/r_hat_mean"),
    Column("valid", "rlpr/valid_frac", ".2f"),
    Column("theta", "filter/threshold", ".4f"),
    Column("kept", "filter/kept_frac", ".2f"),
    Column("rounds", "filter/gen_rounds", ".0f"),
    Column("step_s", "timing_s/step", ".1f"),
    Column("val_acc", validation_accuracy, ".2f"),
)
CURVES = {
    "RLPR reward (means over responses)": TABLE[:4],
    "std filter": (Column("threshold theta", "filter/threshold"), Column("EMA of group std", "filter/ema"),
                   Column("kept fraction", "filter/kept_frac")),
}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    from cpu_backend.smoke import smoke_command
    from rlpr.main import validation_judge_secrets

    return smoke_command(
        argv,
        prog=PROG,
        description=__doc__.split("\n\n")[0],
        recipe="configs/rlpr/smoke_cpu.yaml",
        default_output_dir=DEFAULT_OUTPUT_DIR,
        warm_steps=WARM_STEPS,
        build_trainer=build_trainer,
        build_real=build_real,
        columns=TABLE,
        panels=CURVES,
        secrets=validation_judge_secrets,
    )


if __name__ == "__main__":
    sys.exit(main())
