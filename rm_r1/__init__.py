"""RM-R1: reasoning reward models, one folder per job.

``rm_r1.judge`` (instructions, prompts, verdict rules, pointwise parsing: the judge itself), ``rm_r1.training``
(training data, rewards, the training entry point and its smoke run), ``rm_r1.evaluation`` (benchmarks, judging
modes, scoring, inference-time scaling, best-of-N, meta-RM) and ``rm_r1.as_reward`` (a judge as the reward of an RL
run). The modules at this level are the commands users run: ``python -m rm_r1.main``, ``rm_r1.smoke``,
``rm_r1.evaluate``, ``rm_r1.judge_main``, ``rm_r1.judge_smoke``, ``rm_r1.serve_judge``.
"""
