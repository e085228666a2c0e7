"""RM-R1: reasoning reward models (judge prompts, verdict parser, preference reward, evaluation, scaling)."""
