"""The learning-curve experiment: the RLPR paper's comparison in miniature, on CPU (docs/learning_curve.md).

``python scripts/learning_curve.py`` runs, for each task of ``rlpr.experiments.tasks`` (``exact``, ``freeform``):

1. preparation (cached under ``<output-dir>/<task>/shared``): the task's data as verl parquet files, a tiny Qwen2
   model over the Qwen2.5 tokenizer cut to its first ``VOCAB`` ranks, and its supervised warm start on noisy targets;
2. reward quality: ``Settings.auc_samples`` responses sampled from the warm-started model on validation prompts, each
   scored by every reward (rule exact match, RLPR r̂, r without debias, the sequence likelihood), and each reward's
   ROC-AUC against true correctness;
3. every arm of ``ARMS``: ``RLPRTrainer`` (the rule-reward arm: ``RuleRewardTrainer``, the same trainer with exact match
   in place of the probability reward) on the in-process CPU backend, in its own process and folder, with the same
   seed, steps, batch and sampling; validation (sampled at T = 1, graded by the task's true equivalence) before
   training and every ``Settings.val_every`` steps.

Resumable: an arm whose ``result.json`` exists is skipped; a killed arm resumes from its latest checkpoint (verl's
``resume_mode=auto``); every file a resume reads is written atomically. The results go to
``<results-dir>/learning_curve.json`` and ``learning_curve.png`` after every arm.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from harness.files import write_atomically
from rlpr.experiments.tasks import TASKS, exact_match, make_problems, truly_correct, verl_rows, warm_start_examples

RECIPE = "learning_curve_cpu"
BACKEND = "inprocess"
VOCAB = 1024  # the Qwen2.5 tokenizer's first ranks: every byte and the common merges (offline_models.qwen_tokenizer)
MODEL = {"hidden_size": 128, "num_heads": 4, "num_kv_heads": 4, "num_layers": 2, "initializer_range": 0.02}
RESULTS_NAME = "learning_curve"
REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Arm:
    name: str
    label: str
    overrides: tuple[str, ...] = ()
    rule_reward: bool = False  # train on exact match (RuleRewardTrainer) instead of the probability reward
    trains: bool = True  # False: the warm-started model, validated only
    reward: str | None = None  # the reward_quality key of the reward it trains on


ARMS: tuple[Arm, ...] = (
    Arm("warm_start", "no RL (warm start)", ("trainer.val_only=true",), trains=False),
    Arm("rlvr", "RLVR (exact match)", ("rlpr.shaping=none", "rlpr.debias.mode=current"), rule_reward=True,
        reward="rule"),
    Arm("rlpr", "RLPR (debias + std filter)", (), reward="rlpr"),
    Arm("rlpr_no_debias", "RLPR w/o debias", ("rlpr.shaping=none",), reward="rlpr_no_debias"),
    Arm("rlpr_no_filter", "RLPR w/o std filter", ("rlpr.filter.beta=0.0",), reward="rlpr"),
    Arm("naive_likelihood", "naive likelihood", ("rlpr.score_method=seq_likelihood",), reward="naive_likelihood"),
    Arm("rlpr_reasoning_loss", "RLPR, loss on reasoning only", ("rlpr.policy_loss_tokens=reasoning",),
        reward="rlpr"),
)  # fmt: skip
ARM_NAMES = tuple(a.name for a in ARMS)


@dataclass(frozen=True)
class Settings:
    """What sizes a run; the full run and ``--quick`` differ only here."""

    steps: int = 40
    val_every: int = 10
    val_samples: int = 1  # samples per validation prompt (Avg@k)
    val_size: int = 200
    train_batch: int = 16
    group: int = 8
    warm_steps: int = 500
    warm_batch: int = 128
    warm_lr: float = 3e-3
    auc_samples: int = 256


FULL = Settings()
QUICK = Settings(steps=2, val_every=2, val_samples=1, val_size=24, train_batch=4, group=4, warm_steps=20,
                 warm_batch=32, auc_samples=24)  # fmt: skip


# --------------------------------------------------------------------------------------------------------------------
# preparation (parent process)


def shared_dir(out: Path, task: str) -> Path:
    return out / task / "shared"


def val_file(out: Path, task: str, settings: Settings) -> Path:
    suffix = f"_Avg{settings.val_samples}" if settings.val_samples > 1 else ""
    return shared_dir(out, task) / f"val{suffix}.parquet"


def prepare_task(out: Path, task: str, settings: Settings, seed: int) -> Path:
    """The task's parquet files and warm-started model (cached); returns the model folder."""
    import pandas as pd

    from cpu_backend.warm_start import warm_start
    from harness.reporting import step_progress
    from offline_models import load_qwen25_tokenizer
    from offline_models.tiny_model import MODEL_FILES, build_folder_atomically, save_tiny_qwen2

    shared = shared_dir(out, task)
    train, val = make_problems(task, seed, settings.val_size)
    for path, rows in ((shared / "train.parquet", verl_rows(task, train, "train")),
                       (val_file(out, task, settings), verl_rows(task, val, "val"))):  # fmt: skip
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            write_atomically(path, lambda tmp, rows=rows: pd.DataFrame(rows).to_parquet(tmp))
    tokenizer = load_qwen25_tokenizer(VOCAB)
    base = shared / "tiny-random"
    build_folder_atomically(base, lambda folder: save_tiny_qwen2(tokenizer, folder, seed, **MODEL), MODEL_FILES)
    with step_progress(f"{task}: warm start (once, then cached)", settings.warm_steps):
        return Path(
            warm_start(
                base,
                shared / "tiny-warm",
                tokenizer,
                warm_start_examples(task, train, seed),
                settings.warm_steps,
                settings.warm_lr,
                seed,
                batch_size=settings.warm_batch,
            )
        )


def _reward_quality_module():
    """``scripts/reward_quality.py`` (its ``roc_auc``: the one ROC-AUC of the project)."""
    spec = importlib.util.spec_from_file_location("reward_quality", REPO / "scripts" / "reward_quality.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


REWARDS = ("rule", "rlpr", "rlpr_no_debias", "naive_likelihood")


def score_samples(model: Any, tokenizer: Any, samples: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every reward of each sampled response (``prompt_ids``, ``response_ids``, ``response``, ``reference``): ``rule``
    (exact match), ``rlpr`` (clip(r - r', 0, 1), r' tagged as in training), ``rlpr_no_debias`` (r),
    ``naive_likelihood`` (the sequence likelihood, debiased by its own r' as the naive arm trains), and ``correct``."""
    import rlpr
    from rlpr.reward import debias

    direct: dict[tuple, tuple[float, float]] = {}
    out = []
    for s in samples:
        key = (tuple(s["prompt_ids"]), s["reference"])
        if key not in direct:
            direct[key] = tuple(
                rlpr.score_direct_answer(model, tokenizer, s["prompt_ids"], s["reference"], method=m, tagged=True)
                for m in ("mean_prob", "seq_likelihood")
            )
        r, seq = (
            rlpr.score_response(model, tokenizer, s["prompt_ids"], s["response_ids"], s["reference"], method=m)
            for m in ("mean_prob", "seq_likelihood")
        )
        r, seq = (0.0 if v is None else v for v in (r, seq))  # invalid for a probability reward: r = 0, as in training
        out.append(
            {
                "response": s["response"],
                "reference": s["reference"],
                "correct": int(truly_correct(s["response"], s["reference"])),
                "rule": exact_match(s["response"], s["reference"]),
                "rlpr": debias(r, direct[key][0], "clip"),
                "rlpr_no_debias": r,
                "naive_likelihood": debias(seq, direct[key][1], "clip"),
            }
        )
    return out


def reward_quality(out: Path, task: str, model_dir: Path, settings: Settings, seed: int) -> dict[str, Any]:
    """ROC-AUC of each reward on ``auc_samples`` responses sampled (T = 1) from the warm-started model on validation
    prompts (cycled), against true correctness; cached in ``shared/reward_quality.json``."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = shared_dir(out, task) / "reward_quality.json"
    if path.exists():
        return json.loads(path.read_text())
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    _, val = make_problems(task, seed, settings.val_size)
    problems = [val[i % len(val)] for i in range(settings.auc_samples)]
    torch.manual_seed(seed)
    samples = []
    for lo in range(0, len(problems), 64):
        chunk = problems[lo : lo + 64]
        prompts = [tokenizer.apply_chat_template(p.messages(), add_generation_prompt=True)["input_ids"] for p in chunk]
        width = max(map(len, prompts))
        pad = tokenizer.pad_token_id
        ids = torch.tensor([[pad] * (width - len(p)) + list(p) for p in prompts])
        mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts])
        with torch.no_grad():
            gen = model.generate(input_ids=ids, attention_mask=mask, do_sample=True, temperature=1.0, top_k=0,
                                 top_p=1.0, max_new_tokens=40, pad_token_id=pad)  # fmt: skip
        for p, prompt, row in zip(chunk, prompts, gen[:, width:].tolist()):
            response_ids = row[: row.index(tokenizer.eos_token_id) + 1] if tokenizer.eos_token_id in row else row
            response_ids = [t for t in response_ids if t != pad]
            text = tokenizer.decode(response_ids, skip_special_tokens=True)
            samples.append({"prompt_ids": list(prompt), "response_ids": response_ids, "response": text,
                            "reference": p.reference})  # fmt: skip
    scored = score_samples(model, tokenizer, samples)
    result = {"samples": len(scored), "correct": sum(s["correct"] for s in scored), "auc": auc_table(scored)}
    write_atomically(path, lambda tmp: Path(tmp).write_text(json.dumps(result, indent=2) + "\n"))
    (path.parent / "reward_quality_samples.jsonl").write_text("".join(json.dumps(s) + "\n" for s in scored))
    return result


def auc_table(scored: list[dict[str, Any]]) -> dict[str, float | None]:
    """ROC-AUC of each of ``REWARDS`` against ``correct``; None (not a number) when the rows are all correct or all
    wrong, where no AUC exists."""
    labels = [s["correct"] for s in scored]
    if len(set(labels)) < 2:
        return dict.fromkeys(REWARDS)
    roc_auc = _reward_quality_module().roc_auc
    return {name: roc_auc([s[name] for s in scored], labels) for name in REWARDS}


# --------------------------------------------------------------------------------------------------------------------
# one arm (its own process)


def arm_dir(out: Path, task: str, arm: str) -> Path:
    return out / task / arm


def arm_overrides(out: Path, task: str, arm: Arm, settings: Settings, seed: int) -> list[str]:
    """The Hydra overrides of ``configs/rlpr/learning_curve_cpu.yaml`` for one arm."""
    shared, folder = shared_dir(out, task), arm_dir(out, task, arm.name)
    mini = max(1, settings.train_batch // 2)  # 2 policy updates per step
    return [
        # the validation grader takes none of _base.yaml's grader settings (judge, format_mode)
        "~reward.custom_reward_function.reward_kwargs",
        f"actor_rollout_ref.model.path={shared / 'tiny-warm'}",
        f"data.train_files={shared / 'train.parquet'}",
        f"data.val_files={val_file(out, task, settings)}",
        f"data.train_batch_size={settings.train_batch}",
        f"data.seed={seed}",
        f"actor_rollout_ref.rollout.n={settings.group}",
        f"actor_rollout_ref.actor.ppo_mini_batch_size={mini}",
        f"actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu={mini * settings.group}",
        f"actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu={mini * settings.group}",
        f"trainer.total_training_steps={settings.steps}",
        f"trainer.test_freq={settings.val_every}",
        f"trainer.save_freq={settings.val_every}",
        f"trainer.default_local_dir={folder / 'checkpoints'}",
        f"trainer.experiment_name={task}_{arm.name}",
        "trainer.resume_mode=auto",
        *arm.overrides,
    ]


def rule_reward_trainer_class() -> type:
    """``RLPRTrainer`` with exact match as the reward (the RLVR arm): the same generation, filter, dynamic sampling,
    GRPO update and validation; R = (1 - c)·match + c·F + P, with the format reward F and repetition penalty P of
    RLPR, in place of the probability reward. RLPRTrainer has no rule-reward option, so the arm swaps ``_score``."""
    import torch

    from rlpr.answer import format_reward, repetition_penalty
    from rlpr.reward import final_rewards
    from rlpr.training.scoring import RlprRewards
    from rlpr.training.trainer import RLPRTrainer

    class RuleRewardTrainer(RLPRTrainer):
        def _score(self, batch: Any, timing_raw: dict) -> Any:
            cfg = self.scoring_config
            responses, mask = batch.batch["responses"], batch.batch["response_mask"]
            texts = [
                self.tokenizer.decode(responses[i][mask[i].bool()].tolist(), skip_special_tokens=True)
                for i in range(len(responses))
            ]
            refs = [str(rm["ground_truth"]) for rm in batch.non_tensor_batch["reward_model"]]
            match = torch.tensor([exact_match(t, r) for t, r in zip(texts, refs)], dtype=torch.float64)
            f = torch.tensor([format_reward(t, cfg.format_mode) for t in texts], dtype=torch.float64)
            rep = cfg.repetition
            p = torch.tensor([repetition_penalty(t, rep.window, rep.limit, rep.split_rule) for t in texts],
                             dtype=torch.float64)  # fmt: skip
            zeros = torch.zeros_like(match)
            r_hat, reward = final_rewards(match, zeros, f, p, shaping="none", format_coef=cfg.format_coef,
                                          repetition_on_all=rep.apply_to_all)  # fmt: skip
            metrics = {"rlpr/r_mean": float(match.mean()), "rlpr/reward_mean": float(reward.mean()),
                       "rlpr/r_hat_mean": float(r_hat.mean()), "rlpr/format_mean": float(f.mean())}  # fmt: skip
            return RlprRewards(match, zeros, r_hat, reward, f, p, metrics), 0

    return RuleRewardTrainer


def _columns():
    from harness.reporting import Column, validation_accuracy

    return (
        Column("R", "rlpr/reward_mean"),
        Column("r", "rlpr/r_mean"),
        Column("r'", "rlpr/r_prime_mean"),
        Column("kept", "filter/kept_frac", ".2f"),
        Column("rounds", "filter/gen_rounds", ".0f"),
        Column("step_s", "timing_s/step", ".1f"),
        Column("val_acc", validation_accuracy, ".3f"),
    )


def run_arm(out: Path, task: str, arm_name: str, settings: Settings, seed: int) -> int:
    """Train (or, for ``warm_start``, only validate) one arm in this process; write its ``result.json``."""
    import torch

    from harness.reporting import MetricsFile, StepTable, quiet_known_warnings, reporting_to

    quiet_known_warnings(on_cpu=True)
    torch.set_num_threads(1)  # a tiny model on 2 cores: threading overhead costs more than it gains
    torch.manual_seed(seed)
    from transformers import AutoTokenizer

    from cpu_backend import build_cpu_trainer, compose_cpu_config
    from harness.config_paths import recipe_config_dir
    from rlpr.training.trainer import RLPRTrainer

    arm = ARMS[ARM_NAMES.index(arm_name)]
    folder = arm_dir(out, task, arm.name)
    folder.mkdir(parents=True, exist_ok=True)
    started = time.time()
    from harness.reporting import latest_checkpoint_step

    resumed_from = latest_checkpoint_step(folder / "checkpoints")
    config = compose_cpu_config(
        RECIPE, arm_overrides(out, task, arm, settings, seed), config_dir=str(recipe_config_dir("rlpr"))
    )
    tokenizer = AutoTokenizer.from_pretrained(str(shared_dir(out, task) / "tiny-warm"))
    trainer_cls = rule_reward_trainer_class() if arm.rule_reward else RLPRTrainer
    from rlpr.experiments.batched_generate import BatchedHFGenerateClient

    trainer = build_cpu_trainer(trainer_cls, config, tokenizer, client_cls=BatchedHFGenerateClient)
    metrics = MetricsFile(folder / "metrics.jsonl")
    try:
        with reporting_to(StepTable(_columns()), metrics):
            trainer.fit()
    finally:
        metrics.finish()
    result = summarize_arm(folder / "metrics.jsonl", arm, settings)
    result.update({"wall_s": round(time.time() - started, 1), "resumed_from_step": resumed_from})
    write_atomically(folder / "result.json", lambda tmp: Path(tmp).write_text(json.dumps(result, indent=2) + "\n"))
    return 0


def summarize_arm(metrics_path: Path, arm: Arm, settings: Settings) -> dict[str, Any]:
    """From an arm's metrics file: the validation curve, start and end accuracy, steps trained, and the means of the
    filter's kept fraction, r and r' over the steps."""
    import math

    from harness.reporting import read_metrics, validation_accuracy

    steps, _ = read_metrics(metrics_path)
    curve = [[s, validation_accuracy(m)] for s, m in steps.items() if validation_accuracy(m) is not None]
    if not curve or curve[0][0] != 0:
        raise RuntimeError(f"{metrics_path}: no validation before training (step 0) was logged")
    trained = [s for s, m in steps.items() if s > 0 and "training/global_step" in m]

    def mean(name: str) -> float | None:
        values = [float(m[name]) for s, m in steps.items() if s > 0 and name in m and math.isfinite(float(m[name]))]
        return sum(values) / len(values) if values else None

    return {
        "val_acc_start": curve[0][1],
        "val_acc_end": curve[-1][1],
        "steps": max(trained) if trained else 0,
        "curve": curve,
        "kept_frac_mean": mean("filter/kept_frac"),
        "gen_rounds_mean": mean("filter/gen_rounds"),
        "r_mean": mean("rlpr/r_mean"),
        "r_prime_mean": mean("rlpr/r_prime_mean"),
        "skipped_updates": sum(1 for s, m in steps.items() if s > 0 and m.get("filter/skipped_update")),
    }


# --------------------------------------------------------------------------------------------------------------------
# the whole run (parent process)


def machine() -> dict[str, Any]:
    import torch

    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "device": "cpu",
    }


def collect(out: Path, settings: Settings, seed: int, command: str) -> dict[str, Any]:
    """The results file's content from what the arms and the reward-quality passes wrote so far."""
    tasks: dict[str, Any] = {}
    total = 0.0
    for task in TASKS:
        quality_path = shared_dir(out, task) / "reward_quality.json"
        quality = json.loads(quality_path.read_text()) if quality_path.exists() else None
        arms = {}
        for arm in ARMS:
            path = arm_dir(out, task, arm.name) / "result.json"
            if not path.exists():
                continue
            result = json.loads(path.read_text())
            analysis = path.with_name("analysis.json")  # rlpr.experiments.analysis, when it has run
            total += result["wall_s"]
            auc = None if quality is None or arm.reward is None else quality["auc"][arm.reward]
            arms[arm.name] = {
                "label": arm.label,
                **{k: result[k] for k in ("val_acc_start", "val_acc_end", "steps")},
                "reward_auc": auc,
                "reward": arm.reward,
                "wall_s": result["wall_s"],
                "resumed_from_step": result["resumed_from_step"],
                "command": f"{command}  # arm {task}/{arm.name}: {shlex.join(arm.overrides) or 'recipe defaults'}",
                "seed": seed,
                "backend": BACKEND,
                **{
                    k: result[k]
                    for k in ("kept_frac_mean", "gen_rounds_mean", "r_mean", "r_prime_mean", "skipped_updates", "curve")
                },  # fmt: skip
                "analysis": json.loads(analysis.read_text()) if analysis.exists() else None,
            }
        tasks[task] = {"reward_quality": quality, "arms": arms}
    return {
        "command": command,
        "seed": seed,
        "backend": BACKEND,
        "machine": machine(),
        "settings": asdict(settings),
        "recipe": f"configs/rlpr/{RECIPE}.yaml",
        "arms_wall_s": round(total, 1),
        "tasks": tasks,
    }


def plot(results: dict[str, Any], png: Path) -> Path:
    """Validation accuracy over steps, one panel per task, one line per arm (the warm start as a flat line)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = results["tasks"]
    fig, axes = plt.subplots(1, len(tasks), figsize=(6.5 * len(tasks), 4.5), squeeze=False)
    steps = results["settings"]["steps"]
    for ax, (task, entry) in zip(axes[0], tasks.items()):
        for name, arm in entry["arms"].items():
            curve = arm["curve"]
            if name == "warm_start":
                xs, ys = [0, steps], [curve[0][1]] * 2
                ax.plot(xs, ys, linestyle="--", color="grey", label=arm["label"])
            else:
                ax.plot([c[0] for c in curve], [c[1] for c in curve], marker="o", markersize=3, label=arm["label"])
        ax.set_title(f"task: {task}")
        ax.set_xlabel("training step")
        ax.set_ylabel("validation accuracy (sampled, T = 1)")
        ax.set_ylim(0, 1)
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    fig.tight_layout()
    try:
        write_atomically(png, lambda tmp: fig.savefig(tmp, format="png", dpi=100))
    finally:
        plt.close(fig)
    return png


def write_results(out: Path, results_dir: Path, settings: Settings, seed: int, command: str, wall: float) -> dict:
    results = collect(out, settings, seed, command)
    results["wall_s"] = round(wall, 1)
    results_dir.mkdir(parents=True, exist_ok=True)
    json_path = results_dir / f"{RESULTS_NAME}.json"
    write_atomically(json_path, lambda tmp: Path(tmp).write_text(json.dumps(results, indent=2) + "\n"))
    plot(results, results_dir / f"{RESULTS_NAME}.png")
    return results


def _run_arm_process(out: Path, task: str, arm: str, settings: Settings, seed: int) -> int:
    """``run_arm`` in a fresh process (this module with ``--_arm``), so that a crash or a kill of one arm leaves the
    others and this process alone; returns its exit status."""
    child = [sys.executable, "-m", __spec__.name, "--output-dir", str(out), "--seed", str(seed), "--_arm",
             f"{task}/{arm}", "--steps", str(settings.steps)]  # fmt: skip
    path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)
    return subprocess.call(child, env={**os.environ, "PYTHONPATH": path})


def run_all(out: Path, results_dir: Path, settings: Settings, seed: int, argv: list[str], only: list[str]) -> int:
    import torch

    from harness.reporting import quiet_known_warnings

    quiet_known_warnings(on_cpu=True)
    torch.set_num_threads(1)  # on 2 shared cores a second thread made a warm-start step 30x slower, never faster
    command = shlex.join(["python", "scripts/learning_curve.py", *argv])
    started = time.time()
    wall_file = out / "wall.json"  # wall time of earlier, interrupted invocations
    earlier = json.loads(wall_file.read_text())["seconds"] if wall_file.exists() else 0.0
    todo = [(t, a) for t in TASKS for a in ARMS if not only or f"{t}/{a.name}" in only or a.name in only or t in only]
    print(f"learning curve: {len(todo)} arms, {settings.steps} steps each, output {out}, results {results_dir}")

    def save_wall() -> float:
        total = earlier + time.time() - started
        write_atomically(wall_file, lambda tmp: Path(tmp).write_text(json.dumps({"seconds": total})))
        return total

    for task in TASKS:
        if not any(t == task for t, _ in todo):
            continue
        model_dir = prepare_task(out, task, settings, seed)
        quality = reward_quality(out, task, model_dir, settings, seed)
        auc = ", ".join(f"{k} {v:.3f}" if v is not None else f"{k} -" for k, v in quality["auc"].items())
        print(
            f"{task}: reward ROC-AUC on {quality['samples']} warm-start samples ({quality['correct']} correct): {auc}"
        )
        save_wall()
    for i, (task, arm) in enumerate(todo, 1):
        folder = arm_dir(out, task, arm.name)
        if (folder / "result.json").exists():
            print(f"[{i}/{len(todo)}] {task}/{arm.name}: done earlier, skipped")
            continue
        print(f"[{i}/{len(todo)}] {task}/{arm.name} ({arm.label}) ...", flush=True)
        t0 = time.time()
        if settings == QUICK:  # seconds of work per arm: skip the ~20 s of imports a fresh process costs
            rc = run_arm(out, task, arm.name, settings, seed)
        else:
            rc = _run_arm_process(out, task, arm.name, settings, seed)
        if rc != 0:
            print(f"[{i}/{len(todo)}] {task}/{arm.name} failed (exit {rc}); run the command again to resume it")
            save_wall()
            return rc
        result = json.loads((folder / "result.json").read_text())
        start, end, steps = result["val_acc_start"], result["val_acc_end"], result["steps"]
        print(f"[{i}/{len(todo)}] {task}/{arm.name}: {time.time() - t0:.0f} s, validation accuracy {start:.3f} -> "
              f"{end:.3f} after {steps} steps")  # fmt: skip
        write_results(out, results_dir, settings, seed, command, save_wall())
    results = write_results(out, results_dir, settings, seed, command, save_wall())
    print(f"done in {results['wall_s']:.0f} s (all invocations); results: {results_dir / RESULTS_NAME}.json, .png")
    print(results_table(results))
    return 0


def results_table(results: dict[str, Any]) -> str:
    """A markdown table of the results: task x arm, start, end, reward AUC, steps, wall seconds, and the analysis of
    the final policy (``rlpr.experiments.analysis``) where it has run."""
    lines = [
        "| task | arm | val acc start | val acc end | reward ROC-AUC | steps | wall s | final acc (1,000 samples) "
        "| reasoning ok | consistent |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]

    def cell(value: float | None) -> str:
        return "-" if value is None else f"{value:.3f}"

    for task, entry in results["tasks"].items():
        for arm in entry["arms"].values():
            a = arm.get("analysis") or {}
            lines.append(f"| {task} | {arm['label']} | {arm['val_acc_start']:.3f} | {arm['val_acc_end']:.3f} "
                         f"| {cell(arm['reward_auc'])} | {arm['steps']} | {arm['wall_s']:.0f} | {cell(a.get('acc'))} "
                         f"| {cell(a.get('reasoning_ok'))} | {cell(a.get('consistent'))} |")  # fmt: skip
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = argparse.ArgumentParser(prog="python scripts/learning_curve.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--output-dir", default="outputs/learning_curve", help="data, models, checkpoints, metrics")
    parser.add_argument(
        "--results-dir",
        default=None,
        help="where learning_curve.json/.png go (default: docs/results; --quick: <output-dir>/results)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="tiny sizes, 2 steps per arm (the CI test)")
    parser.add_argument("--steps", type=int, default=None, help="training steps per arm (default: 40; --quick: 2)")
    parser.add_argument("--only", nargs="*", default=[], help="run only these: task, arm or task/arm names")
    parser.add_argument("--_arm", default=None, help=argparse.SUPPRESS)  # one arm, in its own process
    args = parser.parse_args(argv)  # fmt: skip
    settings = QUICK if args.quick else FULL
    if args.steps is not None:
        if args.steps < 1:
            parser.error(f"--steps must be >= 1, got {args.steps}")
        settings = replace(settings, steps=args.steps, val_every=min(settings.val_every, args.steps))
    out = Path(args.output_dir).resolve()
    if args._arm:
        task, arm = args._arm.split("/")
        return run_arm(out, task, arm, settings, args.seed)
    for name in args.only:
        parts = name.split("/")
        if not all(p in TASKS or p in ARM_NAMES for p in parts):
            parser.error(f"--only {name!r}: expected a task {TASKS}, an arm {ARM_NAMES} or task/arm")
    results_dir = Path(args.results_dir or (out / "results" if args.quick else REPO / "docs" / "results"))
    return run_all(out, results_dir, settings, args.seed, argv, args.only)


if __name__ == "__main__":
    sys.exit(main())
