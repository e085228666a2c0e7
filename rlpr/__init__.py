"""RLPR: verifier-free RL with the policy's own probability of the reference answer as reward.

Where things are, by stage: ``rlpr.answer`` (tags, format reward, repetition penalty; shared by the reward and
evaluation); ``rlpr.reward`` (f_seq, debias, final R; the o' cut on token bytes); ``rlpr.training`` (the scoring
batch and r, r', R from its log-probs, verl's padded layout, ``RLPRTrainer``, the EMA std filter, dynamic sampling,
the r' cache, Avg@k validation); ``rlpr.data`` (preparation, row checks, prompts, the bundled sample and its reader);
``rlpr.evaluation`` (validation grading, the benchmark registry and Avg@k, the LLM judge). Commands: ``rlpr.main``
(Hydra entry point), ``rlpr.smoke`` (the CPU smoke run), ``rlpr.score`` (rewards of given responses;
``rlpr.score_response`` and ``rlpr.score_direct_answer`` for one example), ``rlpr.evaluate`` (benchmark evaluation).
What is not RLPR's (config checks, task runner, output files, reporting, the chat client, the generation backends) is
in ``harness``.
"""

__all__ = ["score_direct_answer", "score_response"]


def __getattr__(name: str) -> object:
    if name in __all__:
        from rlpr import score

        return getattr(score, name)
    raise AttributeError(f"module 'rlpr' has no attribute {name!r}")
