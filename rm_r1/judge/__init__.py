"""The RM-R1 judge itself, the same for training, evaluation and the judge-as-reward loop: ``instructions`` (every
instruction text a judge or meta scorer is given), ``prompts`` (the pairwise prompt families and the comparison
layout), ``verdicts`` (the verdict rules and the preference labels) and ``pointwise`` (the pointwise judge's prompts,
score parsing and voting)."""
