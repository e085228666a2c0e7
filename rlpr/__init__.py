"""RLPR: verifier-free RL with the policy's own probability of the reference answer as reward.

Where things are: ``rlpr.answer`` (tags, format reward, repetition penalty), ``rlpr.reward`` (f_seq, debias, final R),
``rlpr.scoring`` (the o' / debias scoring batch on token ids, and r, r', R from its log-probs), ``rlpr.filter`` (the
EMA std filter), ``rlpr.debias_cache`` (r' of the initial policy), ``rlpr.trainer`` (``RLPRTrainer`` on verl's
classic trainer), ``rlpr.main`` (Hydra entry point), ``rlpr.smoke`` (the CPU smoke run), ``rlpr.score`` (rewards of
given responses), ``rlpr.prompts``, ``rlpr.data_prep``, ``rlpr.validation``, ``rlpr.judge`` and ``rlpr.evaluate``
(data, validation scoring and evaluation).
"""

__all__ = ["score_direct_answer", "score_response"]


def __getattr__(name):
    if name in __all__:
        from rlpr import single

        return getattr(single, name)
    raise AttributeError(f"module 'rlpr' has no attribute {name!r}")
