"""The judge evaluation behind ``python -m rm_r1.evaluate``, one module per stage.

``benchmarks`` (RewardBench, RM-Bench and RMB loaded as comparisons), ``plan`` (which judgements a run needs and which
are still missing), ``modes`` (how a pairwise or pointwise judge is asked, read and voted), ``run`` (the backend calls,
each judgement stored as it arrives), ``store`` (the judgements file, the settings check, atomic writes), ``score``
(benchmark scores from the stored judgements, with the per-benchmark ``scorers``) and ``report`` (summary.json,
summary.md and the scaling plot). Inference-time scaling: ``scaling`` (voting, tournaments, Elo), ``best_of_n`` (RMB's
best-of-N sets), ``meta_rm`` (meta-RM guided voting). The command line is ``evaluate`` (run as ``rm_r1.evaluate``).
"""
