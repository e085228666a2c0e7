"""What each arm's final policy writes (docs/learning_curve.md#why): samples of the last checkpoint, read apart.

For every finished arm of a learning-curve output folder, the policy at its last checkpoint (the warm-started model for
``warm_start``) samples five responses per validation prompt at temperature 1, and the responses are parsed into the
shape the tasks teach, ``<think> a+b=s </think> <answer> y </answer>``:

* ``acc``: the answer names the right number (the task's true equivalence, as validation grades);
* ``direct``: answered without reasoning; ``reasoning_ok``: of the responses with reasoning, the share whose partial sum
  s is a+b; ``consistent``: the share whose answer is s+c, i.e. follows the response's own reasoning, right or wrong;
  ``acc_if_reasoning_ok``: the share of right answers after right reasoning (a probe found RLPR lowering it: the
  sampled answer inherits the reasoning's advantage);
* ``forms``: the answers' surface forms (``rlpr.experiments.tasks.FORMS``), ``other`` when none parses.

    python -m rlpr.experiments.analysis --output-dir outputs/learning_curve
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

from harness.files import write_atomically
from rlpr.evaluation.validation import extract_answer
from rlpr.experiments.tasks import FORMS, TASKS, Problem, make_problems, parse_number, render, truly_correct

_REASONING = re.compile(r"^\s*<think> (\d)\+(\d)=(\d+) </think> <answer>")


def answer_form(answer: str | None) -> str:
    """Which of ``FORMS`` an answer is written in (``other`` if it names no number)."""
    n = parse_number(answer)
    if n is None:
        return "other"
    return next(form for form in FORMS if render(n, form) == answer.strip())


def read_responses(problems: list[Problem], responses: list[str]) -> dict[str, Any]:
    """The shares described in the module docstring, over ``responses`` (one per problem, same order)."""
    if len(problems) != len(responses) or not responses:
        raise ValueError(f"{len(problems)} problems but {len(responses)} responses")
    n = len(responses)
    correct = [truly_correct(r, p.reference) for p, r in zip(problems, responses)]
    reasoned = ok = consistent = right_after_ok = direct = 0
    forms = dict.fromkeys((*FORMS, "other"), 0)
    for p, r, right in zip(problems, responses, correct):
        answer = extract_answer(r)
        forms[answer_form(answer)] += 1
        if r.lstrip().startswith("<answer>"):
            direct += 1
        match = _REASONING.match(r)
        if not match or (int(match[1]), int(match[2])) != (p.a, p.b):
            continue
        reasoned += 1
        partial = int(match[3])
        ok += partial == p.a + p.b
        consistent += parse_number(answer) == partial + p.c
        right_after_ok += partial == p.a + p.b and right
    return {
        "samples": n,
        "acc": sum(correct) / n,
        "direct": direct / n,
        "with_reasoning": reasoned / n,
        "reasoning_ok": ok / reasoned if reasoned else None,
        "consistent": consistent / reasoned if reasoned else None,
        "acc_if_reasoning_ok": right_after_ok / ok if ok else None,
        "forms": {k: v / n for k, v in forms.items()},
    }


def final_policy(out: Path, task: str, arm: str) -> Any:
    """The arm's policy at its last checkpoint (verl's FSDP state dict of world size 1) in the warm model's class."""
    import torch
    from transformers import AutoModelForCausalLM

    from harness.reporting import latest_checkpoint_step
    from rlpr.experiments.learning_curve import arm_dir, shared_dir

    model = AutoModelForCausalLM.from_pretrained(str(shared_dir(out, task) / "tiny-warm"), dtype=torch.float32)
    checkpoints = arm_dir(out, task, arm) / "checkpoints"
    step = latest_checkpoint_step(checkpoints)
    if arm != "warm_start":
        if step is None:
            raise FileNotFoundError(f"{checkpoints}: no checkpoint")
        path = checkpoints / f"global_step_{step}" / "actor" / "model_world_size_1_rank_0.pt"
        state = torch.load(path, weights_only=False, map_location="cpu")
        model.load_state_dict({k: v.to_local() if hasattr(v, "to_local") else v for k, v in state.items()})
    return model.eval(), (0 if arm == "warm_start" else step)


def sample(model: Any, tokenizer: Any, problems: list[Problem], seed: int, max_new_tokens: int = 40) -> list[str]:
    """One response per problem at temperature 1, in batches of 100 (left-padded)."""
    import torch

    torch.manual_seed(seed)
    out = []
    pad = tokenizer.pad_token_id
    for lo in range(0, len(problems), 100):
        chunk = problems[lo : lo + 100]
        prompts = [tokenizer.apply_chat_template(p.messages(), add_generation_prompt=True)["input_ids"] for p in chunk]
        width = max(map(len, prompts))
        ids = torch.tensor([[pad] * (width - len(p)) + list(p) for p in prompts])
        mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts])
        with torch.no_grad():
            gen = model.generate(input_ids=ids, attention_mask=mask, do_sample=True, temperature=1.0, top_k=0,
                                 top_p=1.0, max_new_tokens=max_new_tokens, pad_token_id=pad)  # fmt: skip
        out += tokenizer.batch_decode(gen[:, width:], skip_special_tokens=True)
    return out


def analyze(out: Path, seed: int = 0, val_size: int = 200, draws: int = 5) -> dict[str, dict[str, Any]]:
    """``read_responses`` of every finished arm (``result.json`` present) over ``draws`` samples per validation prompt
    (five times the validation's one: a standard error of about 1.5 points instead of 3), written to
    ``<arm>/analysis.json``."""
    import torch
    from transformers import AutoTokenizer

    from rlpr.experiments.learning_curve import ARM_NAMES, arm_dir, shared_dir

    torch.set_num_threads(1)
    found: dict[str, dict[str, Any]] = {}
    for task in TASKS:
        _, val = make_problems(task, seed, val_size)
        if not (shared_dir(out, task) / "tiny-warm").exists():
            continue
        tokenizer = AutoTokenizer.from_pretrained(str(shared_dir(out, task) / "tiny-warm"))
        for arm in ARM_NAMES:
            folder = arm_dir(out, task, arm)
            if not (folder / "result.json").exists():
                continue
            model, step = final_policy(out, task, arm)
            responses = [r for k in range(draws) for r in sample(model, tokenizer, val, seed * 1000 + k)]
            result = {"step": step, **read_responses(val * draws, responses)}
            write_atomically(folder / "analysis.json", lambda tmp, r=result: Path(tmp).write_text(json.dumps(r)))
            found[f"{task}/{arm}"] = result
            shares = ", ".join(f"{k} {v:.2f}" for k, v in result.items() if isinstance(v, float))
            print(f"{task}/{arm} (step {step}): {shares}")
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rlpr.experiments.analysis", description=__doc__.split("\n\n")[0])
    parser.add_argument("--output-dir", default="outputs/learning_curve")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    analyze(Path(args.output_dir).resolve(), args.seed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
