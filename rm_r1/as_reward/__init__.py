"""A trained judge as the reward of another policy's RL run: ``reward`` (verl's async ``compute_score`` asking the
judge), ``trainer`` (the judge's step metrics and fail-fast rule), ``main`` (the Hydra entry point,
``python -m rm_r1.judge_main``) and ``smoke`` (the CPU smoke run, ``python -m rm_r1.judge_smoke``; the tiny judge is
served by ``python -m rm_r1.serve_judge``)."""
