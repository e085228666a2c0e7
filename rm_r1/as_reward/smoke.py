"""``python -m rm_r1.judge_smoke``: the judge-as-reward loop on CPU in a few minutes.

Runs ``JudgeRewardTrainer`` (verl's real classic trainer plus the judge's step metrics and fail-fast rule) on verl's
own Ray + vLLM + FSDP2 path on this CPU (``--backend real``, the default) or the in-process backend
(``--backend inprocess``) with ``configs/judge_reward/smoke_cpu.yaml``: a tiny random Qwen2 policy
answers a few questions of the bundled sample pairs (``rm_r1/training/smoke_pairs.jsonl``, prepared by
``scripts/prepare_judge_reward_data.py``), and its replies are rewarded by ``rm_r1.as_reward.reward`` through verl's own
reward loop, against the pairs' chosen replies. The judge is a tiny Qwen2 warm-started to write either verdict (built
once, cached in the output folder) behind ``python -m harness.chat_server``, started and stopped here; or, with
``--judge-url URL``, any OpenAI-compatible judge (``--judge-model``, and ``--api-key-env`` naming the environment
variable that holds its key). Prints a per-step table (reward, judge calls failed, agreement, latency, requests/s,
step time) and a closing summary, appends verl's metrics to ``<output-dir>/metrics.jsonl`` and draws
``<output-dir>/metrics.png``. A judge that keeps failing stops the run with a non-zero exit naming it.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import Any

from harness.reporting import Column

SMOKE_RECIPE = "smoke_cpu"
DEFAULT_OUTPUT_DIR = "outputs/judge_reward_smoke_cpu"
PROG = "python -m rm_r1.judge_smoke"
ROOT = Path(__file__).resolve().parents[2]
PREPARE_SCRIPT = ROOT / "scripts" / "prepare_judge_reward_data.py"
SMOKE_PAIRS = 6  # 4 training prompts (2 steps of 2) and 2 held out: the fewer questions, the shorter the warm start
VAL_PAIRS = 2
WARM_STEPS = 25
JUDGE_MODEL = "tiny-judge"
# A one-line judge instruction (an instruct-family system prompt file, see rm_r1.judge.prompts.load_prompt): the paper's
# prompts are tested elsewhere; this keeps the CPU forward passes short.
JUDGE_INSTRUCTION = "Which reply is better? End with {verdict_a} or {verdict_b}.\n"

TABLE = (
    Column("reward", "critic/score/mean"),
    Column("failed", "judge/failed_frac", ".2f"),
    Column("agree", "judge/agreement_mean", ".2f"),
    Column("p50_s", "judge/latency_p50", ".3f"),
    Column("req/s", "judge/requests_per_s", ".1f"),
    Column("step_s", "timing_s/step", ".1f"),
)
CURVES = {"judge reward": (TABLE[0],), "judge": TABLE[1:3]}


def _prepare_script():
    spec = importlib.util.spec_from_file_location("prepare_judge_reward_data", PREPARE_SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def prepare_data(out_dir: Path, tokenizer: Any, budget: int) -> tuple[Path, Path, Path]:
    """``train.parquet``, ``val.parquet`` and the judge's instruction file under ``out_dir/data`` (written once)."""
    from harness.files import write_text_atomically

    data = out_dir / "data"
    paths = data / "train.parquet", data / "val.parquet", data / "judge_instruction.txt"
    if all(p.exists() for p in paths):
        return paths
    data.mkdir(parents=True, exist_ok=True)
    pairs = data / "pairs.jsonl"
    sample = (resources.files("rm_r1.training") / "smoke_pairs.jsonl").read_text(encoding="utf-8")
    write_text_atomically(pairs, "".join(sample.splitlines(keepends=True)[:SMOKE_PAIRS]))
    argv = ["--output-dir", str(data), "--tokenizer", "bundled", "--sources", "skywork", "--skywork", str(pairs)]
    argv += ["--val-size", str(VAL_PAIRS), "--max-prompt-length", str(budget)]
    _prepare_script().main(argv, tokenizer=tokenizer)
    write_text_atomically(paths[2], JUDGE_INSTRUCTION)
    return paths


def prepare_judge(
    out_dir: Path, tokenizer: Any, files: tuple[Path, ...], prompt_file: Path, warm_steps: int, for_vllm: bool = False
) -> Path:
    """The tiny random judge warm-started to answer the judge prompts of the smoke's questions with either verdict.

    ``for_vllm``: sized for vLLM's CPU attention (``VLLM_TINY_MODEL``), for verl to serve it; in its own folders."""
    import pandas as pd

    from cpu_backend.warm_start import warm_start
    from offline_models.tiny_model import MODEL_FILES, VLLM_TINY_MODEL, build_folder_atomically, save_tiny_qwen2
    from rm_r1.as_reward.reward import judge_context
    from rm_r1.judge.prompts import build_judge_messages
    from rm_r1.judge.verdicts import VERDICT_TAGS

    suffix, size = ("-vllm", VLLM_TINY_MODEL) if for_vllm else ("", {})
    base = out_dir / "models" / f"judge-random{suffix}"
    build_folder_atomically(base, lambda folder: save_tiny_qwen2(tokenizer, folder, 1, **size), MODEL_FILES)
    examples = []
    for row in pd.concat([pd.read_parquet(f) for f in files]).to_dict("records"):
        context, reference = judge_context(row["extra_info"]), row["reward_model"]["ground_truth"]
        messages = build_judge_messages(context, "some reply", reference, "instruct", str(prompt_file))
        examples += [(messages, VERDICT_TAGS[side]) for side in ("A", "B")]
    warm = out_dir / "models" / f"judge-warm{suffix}"
    return Path(warm_start(base, warm, tokenizer, examples, warm_steps, 1e-2, 0))


@contextmanager
def served_judge(model: Path) -> Iterator[str]:
    """``python -m harness.chat_server --model MODEL`` for the duration of the block; yields its API root URL."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    server = subprocess.Popen(
        [sys.executable, "-m", "harness.chat_server", "--model", str(model)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        line = server.stdout.readline()
        if not line.startswith("serving "):
            raise SystemExit(f"{PROG}: the tiny judge server did not start (exit status {server.poll()})")
        yield line.split(" at ")[1].strip()
    finally:
        server.terminate()
        server.wait(timeout=30)


def _overrides(out_dir: Path, overrides: list[str], judge_url: str, judge_model: str, prompt_file: Path | None) -> Any:
    """The sample data, the tiny policy (both cached in ``out_dir``) and the judge, as overrides of the smoke recipe."""
    from offline_models import SMALL_VOCAB, load_qwen25_tokenizer
    from offline_models.tiny_model import MODEL_FILES, VLLM_TINY_MODEL, build_folder_atomically, save_tiny_qwen2

    tokenizer = load_qwen25_tokenizer(SMALL_VOCAB)
    train, val, _ = prepare_data(out_dir, tokenizer, 256)
    policy = out_dir / "models" / "policy"
    build_folder_atomically(
        policy, lambda folder: save_tiny_qwen2(tokenizer, folder, 2, **VLLM_TINY_MODEL), MODEL_FILES
    )
    kwargs = "reward.custom_reward_function.reward_kwargs"
    return [
        f"actor_rollout_ref.model.path={policy}",
        f"data.train_files={train}",
        f"data.val_files={val}",
        f"{kwargs}.base_url={judge_url}",
        f"{kwargs}.model={judge_model}",
        f"{kwargs}.prompt_file={prompt_file if prompt_file else 'null'}",
        f"trainer.default_local_dir={out_dir / 'checkpoints'}",
        *overrides,
    ]


def build_trainer(
    out_dir: Path, overrides: list[str], judge_url: str, judge_model: str, prompt_file: Path | None
) -> Any:
    """The smoke ``JudgeRewardTrainer`` on the in-process CPU backend, judged at ``judge_url``, ready for ``fit()``."""
    from cpu_backend import build_cpu_trainer, compose_cpu_config
    from harness.config_paths import recipe_config_dir
    from offline_models import SMALL_VOCAB, load_qwen25_tokenizer
    from rm_r1.as_reward.trainer import JudgeRewardTrainer

    config = compose_cpu_config(
        SMOKE_RECIPE,
        overrides=_overrides(out_dir, overrides, judge_url, judge_model, prompt_file),
        config_dir=str(recipe_config_dir("judge_reward")),
    )
    return build_cpu_trainer(JudgeRewardTrainer, config, load_qwen25_tokenizer(SMALL_VOCAB))


def build_real(
    out_dir: Path, overrides: list[str], judge_url: str, judge_model: str, prompt_file: Path | None, n_gpus: int = 1
) -> tuple[Any, type]:
    """The smoke setting on verl's own Ray + vLLM path (``cpu_backend.real_stack``): the checked config with its paths
    made absolute, and the task runner class ``rm_r1.judge_main`` trains with."""
    from cpu_backend.real_stack import compose_real_config
    from harness import config_check
    from harness.config_paths import recipe_config_dir
    from rm_r1.as_reward.main import check_config, judge_task_runner_class, resolve_judge_paths

    config = compose_real_config(
        recipe_config_dir("judge_reward"),
        SMOKE_RECIPE,
        _overrides(out_dir, overrides, judge_url, judge_model, prompt_file),
        n_gpus,
    )
    check_config(config, name=SMOKE_RECIPE)
    config_check.resolve_paths(config)
    resolve_judge_paths(config)
    return config, judge_task_runner_class(SMOKE_RECIPE)


def verl_served_judge_overrides(judge: Path, max_model_len: int = 1024) -> list[str]:
    """verl serves the judge itself (``reward.reward_model.enable``) on its own resource pool of one logical GPU, with
    the real path's vLLM settings (``cpu_backend.verl_plugin.REAL_STACK_OVERRIDES``); the reward function reaches it
    through verl's router, under its model path."""
    from cpu_backend.verl_plugin import REAL_STACK_OVERRIDES

    rm = "reward.reward_model"
    rollout_settings = [
        o.replace("actor_rollout_ref.rollout.", f"{rm}.rollout.")
        for o in REAL_STACK_OVERRIDES
        if ".rollout." in o and "checkpoint_engine" not in o and "rollout.mode=" not in o
    ]
    return [
        f"{rm}.enable=true",
        f"{rm}.enable_resource_pool=true",
        f"{rm}.n_gpus_per_node=1",
        f"{rm}.nnodes=1",
        f"{rm}.model_path={judge}",
        *rollout_settings,
        f"{rm}.rollout.max_model_len={max_model_len}",
        "reward.custom_reward_function.reward_kwargs.base_url=null",
        "reward.custom_reward_function.reward_kwargs.model=null",
    ]


def _train(
    args: argparse.Namespace,
    argv: list[str],
    out_dir: Path,
    overrides: list[str],
    url: str,
    model: str,
    prompt_file: Path | None,
) -> int:
    from cpu_backend.smoke import INPROCESS_BANNER, run_smoke

    if args.backend == "inprocess":
        print(INPROCESS_BANNER)
        trainer = build_trainer(out_dir, overrides, url, model, prompt_file)
        return run_smoke(trainer, prog=PROG, argv=argv, output_dir=out_dir, columns=TABLE, panels=CURVES)
    from cpu_backend.real_stack import run_real_smoke, use_environment
    from rm_r1.as_reward.main import judge_secrets

    use_environment()
    config, runner = build_real(out_dir, overrides, url, model, prompt_file, args.gpus)
    pool = int(config.reward.reward_model.n_gpus_per_node) if config.reward.reward_model.enable_resource_pool else 0
    return run_real_smoke(
        config,
        runner,
        prog=PROG,
        argv=argv,
        output_dir=out_dir,
        columns=TABLE,
        panels=CURVES,
        n_gpus=args.gpus,
        cluster_gpus=args.gpus + pool,  # the judge's own pool when verl serves it
        extra_env=judge_secrets(config),  # the judge's key reaches the reward workers, never the config
    )


def main(argv: list[str] | None = None) -> int:
    from cpu_backend.smoke import add_backend_arguments
    from harness.reporting import quiet_known_warnings
    from rm_r1.as_reward.main import judge_failure

    quiet_known_warnings(on_cpu=True)
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    add_backend_arguments(parser)
    parser.add_argument(
        "--output-dir", default=DEFAULT_OUTPUT_DIR, help="data, models, checkpoints, metrics (default: %(default)s)"
    )
    parser.add_argument("--judge-url", help="an OpenAI-compatible judge's API root, e.g. http://host:8000/v1")
    parser.add_argument(
        "--verl-serves-judge",
        action="store_true",
        help="verl serves the tiny judge itself (reward.reward_model.enable, vLLM on its own logical GPU; real only)",
    )
    parser.add_argument("--judge-model", help="the model name it serves (default with --judge-url: 'judge')")
    parser.add_argument("--api-key-env", help="the environment variable holding the judge's API key")
    parser.add_argument(
        "--warm-steps", type=int, default=WARM_STEPS, help="supervised steps of the tiny judge (default: %(default)s)"
    )
    parser.add_argument("overrides", nargs="*", help="Hydra overrides of configs/judge_reward/smoke_cpu.yaml")
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(1)  # a tiny model on 2 cores: threading overhead costs 10x
    out_dir = Path(args.output_dir).resolve()
    overrides = list(args.overrides)
    if args.api_key_env:
        overrides.append(f"+reward.custom_reward_function.reward_kwargs.api_key_env={args.api_key_env}")
        if not os.environ.get(args.api_key_env):
            raise SystemExit(f"{PROG}: the environment variable {args.api_key_env} (--api-key-env) is not set")
    argv = sys.argv[1:] if argv is None else list(argv)
    if args.verl_serves_judge and (args.judge_url or args.backend != "real"):
        parser.error(
            "--verl-serves-judge runs on the real path (--backend real) and serves its own judge (no --judge-url)"
        )
    try:
        if args.judge_url:
            print(f"judge: {args.judge_url} ({args.judge_model or 'judge'})", flush=True)
            return _train(args, argv, out_dir, overrides, args.judge_url, args.judge_model or "judge", None)
        from offline_models import SMALL_VOCAB, load_qwen25_tokenizer

        tokenizer = load_qwen25_tokenizer(SMALL_VOCAB)
        train, val, prompt_file = prepare_data(out_dir, tokenizer, 256)
        judge = prepare_judge(out_dir, tokenizer, (train, val), prompt_file, args.warm_steps, args.verl_serves_judge)
        if args.verl_serves_judge:
            print(f"judge: the tiny warm-started judge {judge}, served by verl (reward.reward_model)", flush=True)
            overrides = [*verl_served_judge_overrides(judge), *overrides]
            return _train(args, argv, out_dir, overrides, "null", "null", prompt_file)
        with served_judge(judge) as url:
            print(f"judge: the tiny warm-started judge at {url}", flush=True)
            return _train(args, argv, out_dir, overrides, url, JUDGE_MODEL, prompt_file)
    except Exception as err:
        stopped = judge_failure(err)
        if stopped is None:
            raise
        print(f"{PROG}: {stopped}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
