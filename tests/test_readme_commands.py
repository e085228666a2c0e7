"""Every shell command of README.md, recipes/rm_r1/README.md and the pages of docs/ works as written, checked on CPU.

The commands are read from the READMEs (``bash``/``sh``/``shell``/``console`` fences and indented code blocks) and from
the docs pages (their shell fences only: their indented blocks are formulas and file trees), backslash continuations
joined, comment-only lines skipped, ``&&`` chains split, so a new command is covered as soon as it is written.
``CHECKS`` says how each one is checked here; a command no row matches fails
``test_every_readme_command_has_a_cpu_check``:

* ``run``: run as written (``--help``, ``--cfg job``: cheap, nothing trains);
* ``cfg-job``: a training run (GPUs, Ray): run as written with ``--cfg job`` appended, which composes the same config,
  and as ``<entry> --preflight <its arguments>`` (the project's config checker; the GPU and wandb-key checks answered
  as on a GPU machine);
* ``parse``: needs a model or a GPU: run as written until its argparse parser has parsed the arguments, then stopped;
* ``stand-in``: a data command: run as written in a temporary folder, with the hub's datasets and tokenizers replaced
  by the small local files of ``STAND_INS`` and the offline Qwen2.5 tokenizer;
* ``launcher``: run as written (its environment variables included) with ``PYTHON`` a recorder that answers the
  GPU preflight; the entry command it would start is then checked as a ``cfg-job``;
* ``overrides``: Hydra override lines: checked as a ``cfg-job`` on the entry and config the row names;
* ``extra``: ``pip install -e ".[x]"``: the extras exist in pyproject.toml;
* ``covered``: already run by the named test (which must exist); ``not-here``: cannot run here, for the reason given.

After the preparation commands ran, every relative data file of the composed training configs must exist (the recipes
read what the README's preparation commands write).

All python commands run in ONE child process (``runpy``, each with its own argv, environment and captured output),
so verl is imported once. In every python command, argparse's ``parse_args`` is replaced by ``parse_known_args``
that records what the parser did not know: a flag a README passes must be known to its command.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import pytest
import tomllib

ROOT = Path(__file__).resolve().parents[1]
READMES = ("README.md", "recipes/rm_r1/README.md")
DOCS = tuple(sorted(str(p.relative_to(ROOT)) for p in (ROOT / "docs").glob("*.md")))  # shell fences only

RUN, CFG_JOB, PARSE, STAND_IN, LAUNCHER, OVERRIDES, EXTRA, COVERED, NOT_HERE = (
    "run", "cfg-job", "parse", "stand-in", "launcher", "overrides", "extra", "covered", "not-here"
)  # fmt: skip

# (pattern on the command without its environment variables, how it is checked, detail); the first match wins.
CHECKS: list[tuple[str, str, str]] = [
    (r"^python -m (rlpr|rm_r1)\.main( .*)? (--cfg job|--help|-h)( |$)", RUN, "prints, trains nothing"),
    (r"^python -m (rlpr|rm_r1)\.main( |$)", CFG_JOB, "training needs GPUs and Ray"),
    (r"^python -m rlpr\.smoke (.* )?--backend inprocess( |$)", COVERED,
     "tests/cpu_backend/test_smoke.py::test_smoke_prints_a_table_appends_metrics_and_knows_when_it_is_done"),
    (r"^python -m rlpr\.smoke (.* )?--gpus 2( |$)", COVERED,
     "tests/real_stack/test_smokes.py::test_two_actor_ranks_and_two_vllm_replicas"),
    (r"^python -m rlpr\.smoke( |$)", COVERED,
     "tests/real_stack/test_smokes.py::test_rlpr_killed_after_two_steps_stops_in_time_and_resumes_to_four_with_the_saved_state"),
    (r"^python -m rm_r1\.smoke (.* )?--backend inprocess( |$)",
     COVERED, "tests/rm_r1/training/test_smoke.py::test_cpu_smoke_grpo_with_the_preference_reward"),
    (r"^python -m rm_r1\.smoke( |$)", COVERED,
     "tests/real_stack/test_smokes.py::test_rm_r1_grpo_with_its_kl_reference"),
    (r"^bash scripts/install_cpu\.sh$", NOT_HERE, "the install itself (network): .ci/run runs it first"),
    (r"^python -m cpu_backend\.install_check$", COVERED,
     "tests/test_install.py::test_the_install_check_loads_the_path"),
    (r"^python -m rm_r1\.judge_smoke .*--judge-url", COVERED,
     "tests/rm_r1/as_reward/test_smoke.py::test_judge_smoke_with_an_external_judge_keeps_its_api_key_secret"),
    (r"^python -m rm_r1\.judge_smoke( |$)", COVERED,
     "tests/rm_r1/as_reward/test_smoke.py::test_cpu_smoke_grpo_with_a_served_judge_as_the_reward"),
    (r"^python -m pytest( |$)", NOT_HERE, "the test suite itself, of which this file is a part"),
    (r"^python -m \S+ (.* )?(--help|-h)$", RUN, "prints its options"),
    (r"^python -m (rlpr\.evaluate|rlpr\.score|rm_r1\.evaluate)( |$)", PARSE, "needs a real model (GPU, hub)"),
    (r"^python scripts/(reward_quality|bench_scoring_batch)\.py( |$)", PARSE, "needs a real model or minutes of CPU"),
    (r"^python scripts/prepare_(rlpr|rm_r1|judge_reward)_data\.py( |$)", STAND_IN, "reads the hub"),
    (r"^bash recipes/\S+\.sh( |$)", LAUNCHER, "needs GPUs and Ray"),
    (r"^\+{0,2}reward\.custom_reward_function\.reward_kwargs\.\w+=", OVERRIDES, "rlpr.main qwen2.5-7b-base"),
    (r"^pip install -e \.\[[\w,-]+\]$", EXTRA, "installing needs the network"),
    (r"^pip install ", NOT_HERE, "downloads packages (network; the CUDA builds need a GPU machine)"),
    (r"^ray start ", NOT_HERE, "starts a Ray cluster node (the launchers' cluster path: tests/rlpr/test_launchers.py)"),
]  # fmt: skip

# Local stand-ins for the hub: dataset names of rlpr.data.prep.DATASETS / rm_r1.training.data.SOURCES -> small local
# files with the same columns; `--sft` files the README names are created in the working folder from the last entry.
STAND_INS = {
    "rlpr:train": "tests/rlpr/data/rlpr_train.parquet",
    "rlpr:MMLU-Pro": "tests/rlpr/data/mmlu_pro.jsonl",
    "rlpr:GPQA-diamond": "tests/rlpr/data/gpqa_diamond.parquet",
    "rlpr:TheoremQA": "tests/rlpr/data/theoremqa.json",
    "rlpr:WebInstruct-verified": "tests/rlpr/data/webinstruct_verified.jsonl",
    "rlpr:MATH-500": "tests/rlpr/data/math500.jsonl",
    "rlpr:Minerva": "tests/rlpr/data/minerva.jsonl",
    "rlpr:AIME2024": "tests/rlpr/data/aime2024.parquet",
    "rm_r1:skywork": "tests/rm_r1/training/data/skywork.jsonl",
    "rm_r1:code": "tests/rm_r1/training/data/code.jsonl",
    "rm_r1:math": "tests/rm_r1/training/data/math.parquet",
    "hub:gaotang/RM-R1-Distill-SFT": "tests/rm_r1/training/data/distill_sft_published.jsonl",
    "sft": "tests/rm_r1/training/data/sft.jsonl",
}

# Local input files the README's examples name (the user's own files), created in the working folder from these.
LOCAL_FILES = {"webinstruct_mc.jsonl": "tests/rlpr/data/webinstruct_verified_mc.jsonl"}

_FENCE = re.compile(r"^\s*(```+|~~~+)\s*([\w+-]*)")
_SHELL_LANGS = {"bash", "sh", "shell", "console", "zsh"}
_LIST_ITEM = re.compile(r"^\s*([*+-]|\d+[.)])\s")
_ENV = re.compile(r"^[A-Za-z_]\w*=")
_FLAG = re.compile(r"(?<![\w-])--[a-z][\w-]*")


@dataclass
class Command:
    where: str  # README.md:123
    env: dict[str, str]
    words: list[str]
    comment_flags: list[str] = field(default_factory=list)  # flags shown in comments next to it ("# RMB: --data")

    @property
    def text(self) -> str:
        return " ".join(self.words)

    def check(self) -> tuple[str, str] | None:
        for pattern, how, detail in CHECKS:
            if re.search(pattern, self.text):
                return how, detail
        return None


def code_blocks(text: str, indented: bool = True) -> list[list[tuple[int, str]]]:
    """The shell blocks of a markdown text: fenced ones with a shell language, and (with ``indented``) indented
    (4 spaces) ones after a blank line that follows a paragraph at the margin (not a list item's continuation), as
    ``(line number, line)``."""
    lines = text.splitlines()
    blocks, i, last_text = [], 0, ""
    while i < len(lines):
        fence = _FENCE.match(lines[i])
        if fence:
            marker, lang, body = fence.group(1), fence.group(2).lower(), []
            i += 1
            while i < len(lines) and not lines[i].strip().startswith(marker):
                body.append((i + 1, lines[i]))
                i += 1
            if lang in _SHELL_LANGS:
                blocks.append(body)
            i, last_text = i + 1, ""
            continue
        line = lines[i].expandtabs()
        is_indented = indented and line.startswith("    ") and line.strip()
        if is_indented and i > 0 and not lines[i - 1].strip() and last_text and not last_text[0].isspace():
            if not _LIST_ITEM.match(last_text):
                body = []
                while i < len(lines) and (not lines[i].strip() or lines[i].expandtabs().startswith("    ")):
                    body.append((i + 1, lines[i].expandtabs()[4:]))
                    i += 1
                blocks.append(body)
                continue
        if line.strip():
            last_text = line
        i += 1
    return blocks


def _split_comment(line: str) -> tuple[str, str]:
    """A shell line cut at its comment: the first ``#`` outside quotes that starts a word."""
    quote = ""
    for k, char in enumerate(line):
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "#" and (k == 0 or line[k - 1].isspace()):
            return line[:k], line[k + 1 :]
    return line, ""


def _segments(words: list[str]) -> list[list[str]]:
    out: list[list[str]] = [[]]
    for word in words:
        if word in ("&&", "||", ";"):
            out.append([])
        else:
            out[-1].append(word)
    return [s for s in out if s]


def readme_commands(text: str, rel: str, indented: bool = True) -> list[Command]:
    """The shell commands of a README's text (``rel``: its name), with their environment variables (``$VARS``
    expanded); ``indented``: indented code blocks count too."""
    found: list[Command] = []
    for block in code_blocks(text, indented):
        logical: list[tuple[int, str]] = []
        for line_no, line in block:
            if logical and logical[-1][1].endswith("\\"):
                logical[-1] = (logical[-1][0], logical[-1][1][:-1] + " " + line.strip())
            else:
                logical.append((line_no, line.strip()))
        for line_no, line in logical:
            line = line.removeprefix("$ ")
            if not line:
                continue
            code, comment = _split_comment(line)
            flags = _FLAG.findall(comment)
            if not code.strip():  # a comment line: its flags belong to the command above it
                if found and found[-1].where.startswith(rel):
                    found[-1].comment_flags += flags
                continue
            for segment in _segments(shlex.split(code)):
                env = {}
                while segment and _ENV.match(segment[0]) and len(segment) > 1:
                    key, _, value = segment.pop(0).partition("=")
                    env[key] = os.path.expandvars(value)
                found.append(Command(f"{rel}:{line_no}", env, [os.path.expandvars(w) for w in segment], flags))
    return found


@cache
def all_commands() -> tuple[Command, ...]:
    pages = [(name, True) for name in READMES] + [(name, False) for name in DOCS]
    texts = [((ROOT / name).read_text(encoding="utf-8"), name, indented) for name, indented in pages]
    return tuple(c for text, name, indented in texts for c in readme_commands(text, name, indented))


def _ids(commands) -> list[str]:
    return [f"{c.where} {c.text[:60]}" for c in commands]


# ---------------------------------------------------------------------------------------------------------------------
# the parser of the READMEs


def test_commands_are_read_from_fences_and_indented_blocks_with_continuations_and_comments():
    text = "\n".join([
        "Text at the margin:", "", "    python -m a.b --x 1 \\", "        --y 2   # note: --z 3", "    # see --w",
        "", "* item", "", "    not code (a list item's continuation)", "",
        "```bash", 'A=1 B="$HOME" bash run.sh k=v && pip install -e ".[test]"', "# comment only", "```",
        "```yaml", "key: value", "```",
    ])  # fmt: skip
    commands = readme_commands(text, "README.md")
    assert [c.words for c in commands] == [
        ["python", "-m", "a.b", "--x", "1", "--y", "2"],
        ["bash", "run.sh", "k=v"],
        ["pip", "install", "-e", ".[test]"],
    ]
    assert commands[0].comment_flags == ["--z", "--w"]
    assert commands[1].env == {"A": "1", "B": os.environ["HOME"]}
    assert [c.where for c in commands] == ["README.md:3", "README.md:12", "README.md:12"]


def test_a_docs_page_contributes_its_shell_fences_but_not_its_indented_blocks():
    text = "\n".join(["A formula:", "", "    r = f_seq(p_1 ... p_m)", "", "```bash", "python -m a.b --help", "```"])
    commands = readme_commands(text, "page", indented=False)
    assert [c.words for c in commands] == [["python", "-m", "a.b", "--help"]]
    assert len(readme_commands(text, "README.md")) == 2


def test_the_readmes_have_commands_of_every_kind():
    kinds = {c.check()[0] for c in all_commands() if c.check()}
    assert {RUN, CFG_JOB, PARSE, STAND_IN, LAUNCHER, COVERED, NOT_HERE} <= kinds
    assert {c.where.split(":")[0] for c in all_commands()} >= {"README.md", "docs/setup.md", "docs/rlpr.md"}


FIRST_SCREEN = 50  # lines


def test_the_readme_starts_with_its_set_up_commands_each_on_its_own():
    """The README's first shell blocks, within its first screen: the install, the main job and the tests, one command
    per block (never a chain), in that order."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    blocks = [b for b in code_blocks(text) if any(line.strip() for _, line in b)][:3]
    firsts = [[line.strip() for _, line in block if line.strip()] for block in blocks]
    assert firsts == [["bash scripts/install_cpu.sh"], ["python -m rlpr.smoke"], ["python -m pytest -q tests"]], firsts
    assert all(line_no <= FIRST_SCREEN for block in blocks for line_no, _ in block), [b[0][0] for b in blocks]
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    assert "bash scripts/install_cpu.sh" in ci and "python -m pytest -q tests" in ci  # CI runs what the README says


# ---------------------------------------------------------------------------------------------------------------------
# static checks


def test_every_readme_command_has_a_cpu_check():
    unmapped = [f"README command {c.text!r} ({c.where}) has no CPU check: add one to CHECKS in {Path(__file__).name}"
                for c in all_commands() if c.check() is None]  # fmt: skip
    assert not unmapped, "\n".join(unmapped)


_MODULE = re.compile(r"python3? -m ([\w.]+)")
_PATHS = re.compile(r"(?<![\w/.-])((?:scripts|recipes)/[\w./-]+\.(?:py|sh))")


def test_every_module_script_and_launcher_the_readmes_mention_exists():
    missing = []
    for name in READMES + DOCS:
        text = (ROOT / name).read_text(encoding="utf-8")
        for module in set(_MODULE.findall(text)):
            top = module.split(".")[0]
            if top in ("harness", "rlpr", "rm_r1", "scripts", "cpu_backend", "offline_models"):
                base = ROOT.joinpath(*module.split("."))
                if not (base.with_suffix(".py").is_file() or (base / "__main__.py").is_file()):
                    missing.append(f"{name}: python -m {module}")
            elif not _installed(top):
                missing.append(f"{name}: python -m {module} (not installed)")
        for rel in set(_PATHS.findall(text)):
            if "{" not in rel and "<" not in rel and not (ROOT / rel).is_file():
                missing.append(f"{name}: {rel}")
    assert not missing, "README mentions what does not exist:\n" + "\n".join(sorted(missing))


def _installed(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def test_covered_commands_name_tests_that_exist():
    for command in all_commands():
        how, detail = command.check() or (None, "")
        if how == COVERED:
            file, _, name = detail.partition("::")
            source = (ROOT / file).read_text(encoding="utf-8")
            module = command.words[2]  # python -m <module>: imported by the test, or run by it as a command
            package, _, leaf = module.rpartition(".")
            runs = f'"{module}"' in source or f"from {package} import {leaf}" in source
            assert f"def {name}(" in source and runs, (command.where, detail)


def test_pip_extras_exist():
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    for command in all_commands():
        if (command.check() or ("",))[0] == EXTRA:
            wanted = re.search(r"\[([\w,-]+)\]", command.words[-1]).group(1).split(",")
            assert set(wanted) <= set(extras), f"{command.where}: {command.text}: pyproject.toml has {sorted(extras)}"


def _launcher_variables(launcher: Path) -> set[str]:
    """The environment variables a launcher reads: itself, the folder's shared file and recipes/_launch.sh."""
    files = [launcher, *launcher.parent.glob("*common.sh"), ROOT / "recipes" / "_launch.sh"]
    return {m for f in files for m in re.findall(r"\$\{?([A-Z_][A-Z0-9_]*)", f.read_text())}


def test_launcher_variables_in_the_readmes_are_read_by_the_launcher():
    for command in all_commands():
        if (command.check() or ("",))[0] == LAUNCHER:
            unknown = set(command.env) - _launcher_variables(ROOT / command.words[1])
            assert not unknown, f"{command.where}: {command.words[1]} does not read {sorted(unknown)}"


# ---------------------------------------------------------------------------------------------------------------------
# running them: launchers first (bash, with a recording PYTHON), then every python command in one child process

_RECORDER = """#!/usr/bin/env bash
# PYTHON for a launcher under test: answers the GPU preflight, records the entry command, runs anything else.
if [ "$1" = -m ] && [ "$3" = --preflight ]; then printf '1\\n8\\n%s\\n' "$FAKE_OUTPUT"; exit 0; fi
if [ "$1" = -m ]; then printf '%s\\0' "$@" > "$RECORD"; exit 0; fi
exec "$REAL_PYTHON" "$@"
"""


def _child_env(extra: dict[str, str]) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
           "TOKENIZERS_PARALLELISM": "false"}  # fmt: skip
    return {**env, **extra}


def _record_launcher(command: Command, work: Path) -> tuple[list[str] | None, str]:
    """The entry command (``[module, *args]``) a launcher starts, run as written with the recording PYTHON."""
    recorder, record, fake = work / "python-recorder", work / "launcher.record", work / "fake-output"
    recorder.write_text(_RECORDER)
    recorder.chmod(0o755)
    (fake / "global_step_1" / "huggingface").mkdir(parents=True, exist_ok=True)  # what SFT's launcher links
    (fake / "latest_checkpointed_iteration.txt").write_text("1")
    record.unlink(missing_ok=True)
    env = _child_env({**command.env, "PYTHON": str(recorder), "RECORD": str(record), "FAKE_OUTPUT": str(fake),
                      "REAL_PYTHON": sys.executable})  # fmt: skip
    done = subprocess.run(command.words, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    if done.returncode != 0 or not record.exists():
        return None, f"exit {done.returncode}\n{done.stderr[-2000:]}"
    argv = record.read_text().split("\0")[:-1]
    start = len(argv) - 1 - argv[::-1].index("-m")  # torchrun: `-m torch.distributed.run ... -m rm_r1.main ...`
    return argv[start + 1 :], ""


# A training command's composed config also goes through `<entry> --preflight` (what the launchers run first: the
# project's config checker and path resolution), with its GPU and wandb-key checks answered as on a GPU machine.
PREFLIGHT = " [preflight]"


def _jobs_and_launchers(work: Path) -> tuple[list[dict], dict[str, str], dict[str, str]]:
    """The jobs of the batch runner, the launchers that failed (id -> error) and repeated commands (id -> the id of
    the job that runs them)."""
    jobs, launcher_errors = [], {}
    for command in all_commands():
        how, detail = command.check() or (None, "")
        words, job = command.words, {"id": command.where + " " + command.text, "env": command.env, "parse_only": False}
        if how in (RUN, CFG_JOB, PARSE, STAND_IN):
            target = words[2] if words[1] == "-m" else words[1]
            extra = ["--cfg", "job"] if how == CFG_JOB else []
            args = (words[3:] if words[1] == "-m" else words[2:]) + extra
            jobs.append({**job, "module": words[1] == "-m", "target": target, "args": args, "parse_only": how == PARSE,
                         "order": 0 if how == STAND_IN else 1})  # fmt: skip
        elif how == OVERRIDES:
            entry, config = detail.split()
            jobs.append({**job, "module": True, "target": entry, "order": 1,
                         "args": ["--config-name", config, *words, "--cfg", "job"]})  # fmt: skip
        elif how == LAUNCHER:
            entry, error = _record_launcher(command, work)
            if entry is None:
                launcher_errors[job["id"]] = error
                continue
            jobs.append({**job, "env": {}, "module": True, "target": entry[0], "args": [*entry[1:], "--cfg", "job"],
                         "order": 1})  # fmt: skip
    for job in [j for j in jobs if j["args"][-2:] == ["--cfg", "job"]]:  # and the project's config checker on it
        jobs.append({**job, "id": job["id"] + PREFLIGHT, "args": ["--preflight", *job["args"][:-2]]})
    unique, aliases = {}, {}  # a command both READMEs show runs once
    for job in jobs:
        signature = json.dumps([job["target"], job["args"], job["env"]])
        if signature in unique:
            aliases[job["id"]] = unique[signature]["id"]
        else:
            unique[signature] = job
    return sorted(unique.values(), key=lambda j: j["order"]), launcher_errors, aliases


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> dict:
    """Run every runnable README command once; a dict of job id -> result (and the working folder)."""
    work = tmp_path_factory.mktemp("readme")
    jobs, launcher_errors, aliases = _jobs_and_launchers(work)
    for index, job in enumerate(jobs):
        job["index"] = index
    sft = Path(STAND_INS["sft"])
    for job in jobs:  # `--sft FILE`: the user's distillation traces, here the bundled sample under the README's name
        if "--sft" in job["args"] and f"hub:{job['args'][job['args'].index('--sft') + 1]}" not in STAND_INS:
            (work / job["args"][job["args"].index("--sft") + 1]).write_bytes((ROOT / sft).read_bytes())
    for name in {a for job in jobs for a in job["args"]} & LOCAL_FILES.keys():
        (work / name).write_bytes((ROOT / LOCAL_FILES[name]).read_bytes())
    spec = {"root": str(ROOT), "work": str(work), "jobs": jobs, "stand_ins": STAND_INS}
    (work / "jobs.json").write_text(json.dumps(spec))
    done = subprocess.run([sys.executable, __file__, str(work / "jobs.json")], cwd=work, env=_child_env({}),
                          capture_output=True, text=True, timeout=900)  # fmt: skip
    assert done.returncode == 0, f"the batch runner failed:\n{done.stderr[-3000:]}"
    ran = {r["id"]: r for r in json.loads((work / "results.json").read_text())}
    ran.update({key: {"id": key, "rc": 1, "err_tail": err, "unknown": [], "options": []}
                for key, err in launcher_errors.items()})  # fmt: skip
    ran.update({alias: ran[original] for alias, original in aliases.items()})
    jobs_by_id = {j["id"]: j for j in jobs}
    return {"work": work, "jobs": jobs_by_id | {a: jobs_by_id[o] for a, o in aliases.items()}, "ran": ran}


_RUNNABLE = [c for c in all_commands() if (c.check() or ("",))[0] in (RUN, CFG_JOB, PARSE, STAND_IN, LAUNCHER,
                                                                       OVERRIDES)]  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize("command", _RUNNABLE, ids=_ids(_RUNNABLE))
def test_readme_command_works_on_cpu(command, results):
    key = command.where + " " + command.text
    result = results["ran"][key]
    how = command.check()[0]
    shown = results["jobs"].get(key, {})
    ran_as = " ".join([shown.get("target", "")] + shown.get("args", []))
    for run in (key, key + PREFLIGHT):
        if run in results["ran"]:
            done, job = results["ran"][run], results["jobs"].get(run, {})
            assert done["rc"] == 0, (
                f"README command failed ({how}): {command.text}\n  at {command.where}\n  ran as: "
                f"{' '.join([job.get('target', ''), *job.get('args', [])])}\n--- stderr (tail) ---\n{done['err_tail']}"
            )
    assert PREFLIGHT not in key and (how not in (CFG_JOB, OVERRIDES, LAUNCHER) or key + PREFLIGHT in results["ran"])
    assert not result["unknown"], f"{command.where}: {command.text}: unknown arguments {result['unknown']}"
    if how in (PARSE, STAND_IN):  # an argparse command: its parser must have run (else nothing was checked)
        assert result["options"], f"{command.where}: {ran_as} never parsed its arguments"
    if command.comment_flags and how in (RUN, PARSE, STAND_IN):
        unknown = sorted(set(command.comment_flags) - set(result["options"]))
        assert not unknown, f"{command.where}: flags shown in the comments {unknown} are not options of {ran_as}"


@pytest.mark.slow  # runs every README command (a minute); tests/test_configs.py checks the RLPR recipes' files fast
def test_recipes_read_the_files_the_readme_preparation_commands_write(results):
    """Every relative data file of a composed training config (``--cfg job``) exists after the README's preparation
    commands ran in the same folder."""
    import yaml

    work, missing, seen = results["work"], [], 0
    for key, job in results["jobs"].items():
        if job["id"] != key or job["args"][-2:] != ["--cfg", "job"] or results["ran"][key]["rc"] != 0:
            continue
        data = (yaml.safe_load((work / "stdout" / f"{job['index']}.txt").read_text()) or {}).get("data", {})
        for files in (data.get("train_files"), data.get("val_files")):
            for name in [files] if isinstance(files, str) else files or []:
                seen += 1
                if not Path(name).is_absolute() and not (work / name).exists():
                    missing.append(f"{key}: {name}")
    assert seen, "no composed config with data files"
    assert not missing, "configs read files the README's preparation commands do not write:\n" + "\n".join(missing)


# ---------------------------------------------------------------------------------------------------------------------
# the batch runner (this file run as a script in the child process)


def _stand_in_hub(root: Path, stand_ins: dict[str, str]) -> None:
    """Serve hub dataset names from local files and hub tokenizer names with the offline Qwen2.5 tokenizer."""
    import datasets
    import transformers

    from rlpr.data.prep import DATASETS
    from rm_r1.training.data import SOURCES

    hub = {DATASETS[k.split(":")[1]].hub: v for k, v in stand_ins.items() if k.startswith("rlpr:")}
    hub |= {SOURCES[k.split(":")[1]].hub_name: v for k, v in stand_ins.items() if k.startswith("rm_r1:")}
    hub |= {k.removeprefix("hub:"): v for k, v in stand_ins.items() if k.startswith("hub:")}
    real_load, real_tokenizer = datasets.load_dataset, transformers.AutoTokenizer.from_pretrained

    def load_dataset(name, *args, **kwargs):
        if name not in hub:
            raise AssertionError(f"no local stand-in for hub dataset {name!r}: add one to STAND_INS")
        path = root / hub[name]
        return real_load(path.suffix.lstrip(".").replace("jsonl", "json"), data_files=str(path), split="train")

    def from_pretrained(name, *args, **kwargs):
        if Path(str(name)).exists():
            return real_tokenizer(name, *args, **kwargs)
        from offline_models import load_qwen25_tokenizer

        return load_qwen25_tokenizer(8192)

    datasets.load_dataset = load_dataset
    transformers.AutoTokenizer.from_pretrained = from_pretrained


class _Parsed(Exception):
    """Raised after parsing in a ``parse`` job: the command's work needs what this machine does not have."""


def _run_jobs(spec_file: Path) -> None:
    import argparse
    import runpy
    import traceback

    spec = json.loads(spec_file.read_text())
    root, work = Path(spec["root"]), Path(spec["work"])
    os.environ["HF_DATASETS_CACHE"] = str(work / "hf-datasets-cache")
    _stand_in_hub(root, spec["stand_ins"])
    from harness import preflight

    preflight.gpu_problem = preflight.wandb_problem = lambda *args, **kwargs: None
    state: dict = {}

    def parse_args(self, args=None, namespace=None):
        parsed, unknown = self.parse_known_args(args, namespace)
        state["options"] += [o for o in self._option_string_actions if o.startswith("--")]
        state["unknown"] += unknown
        if unknown:
            self.error(f"unrecognized arguments: {' '.join(unknown)}")
        if state["parse_only"]:
            raise _Parsed
        return parsed

    argparse.ArgumentParser.parse_args = parse_args
    (work / "stdout").mkdir(exist_ok=True)
    results, saved_fds = [], (os.dup(1), os.dup(2))
    for job in spec["jobs"]:
        index = job["index"]
        state.update(options=[], unknown=[], parse_only=job["parse_only"])
        out_path, err_path = work / "stdout" / f"{index}.txt", work / "stdout" / f"{index}.err"
        saved_env, saved_argv = dict(os.environ), sys.argv
        os.environ.update(job["env"])
        target = job["target"] if job["module"] else str(root / job["target"])
        sys.argv = [target, *job["args"]]
        sys.stdout.flush(), sys.stderr.flush()
        with open(out_path, "w") as out, open(err_path, "w") as err:
            os.dup2(out.fileno(), 1), os.dup2(err.fileno(), 2)
            try:
                if job["module"]:
                    runpy.run_module(target, run_name="__main__", alter_sys=True)
                else:
                    runpy.run_path(target, run_name="__main__")
                rc = 0
            except _Parsed:
                rc = 0
            except SystemExit as stop:
                rc = stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
                if isinstance(stop.code, str):
                    print(stop.code, file=sys.stderr)
            except BaseException:  # noqa: BLE001 - a README command's failure is this job's result
                traceback.print_exc()
                rc = 1
            finally:
                sys.stdout.flush(), sys.stderr.flush()
                os.dup2(saved_fds[0], 1), os.dup2(saved_fds[1], 2)
                os.environ.clear(), os.environ.update(saved_env)
                sys.argv = saved_argv
        results.append({"id": job["id"], "rc": rc, "err_tail": err_path.read_text(errors="replace")[-3000:],
                        "unknown": state["unknown"], "options": sorted(set(state["options"]))})  # fmt: skip
    (work / "results.json").write_text(json.dumps(results))


if __name__ == "__main__":
    _run_jobs(Path(sys.argv[1]))
