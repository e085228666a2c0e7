"""The judge evaluation behind ``python -m rm_r1.evaluate``, one module per stage.

``plan`` (which judgements a run needs and which are still missing), ``modes`` (how a pairwise or pointwise judge is
asked, read and voted), ``run`` (the backend calls, each judgement stored as it arrives), ``store`` (the judgements
file, the settings check, atomic writes), ``score`` (benchmark scores from the stored judgements) and ``report``
(summary.json, summary.md and the scaling plot). The command line is ``rm_r1.evaluate``.
"""
