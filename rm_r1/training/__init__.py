"""Training an RM-R1 judge (SFT, then GRPO with the preference reward): ``data`` (the training pairs), ``reward``
(verl's reward functions), ``main`` (the Hydra entry point, ``python -m rm_r1.main``) and ``smoke`` (the CPU smoke
run, ``python -m rm_r1.smoke``)."""
